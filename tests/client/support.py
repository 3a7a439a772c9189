"""Run bodies and stream helpers shared by the client tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2

from app.client import SSEDecoder, SSEFrame
from app.runs.schemas import RunEventRead

LONG_REPLY = " ".join(f"word{index}" for index in range(120))


def run_body(**llm_config: Any) -> dict[str, Any]:
    """A prompt → history → `llm.test` composition; `llm_config` configures the model."""
    return {
        "composition": {
            "layers": [
                {
                    "name": "prompt",
                    "type": "plain.prompt",
                    "config": {"prefix": "Be brief.", "user": "hello"},
                },
                {"name": "history", "type": "pydantic_ai.history"},
                {"name": "llm", "type": "llm.test", "config": llm_config or None},
            ]
        }
    }


BASIC = run_body()
STREAMING = run_body(latency_seconds=0.3, reply=LONG_REPLY, stream_chunk_chars=4)


def slow(seconds: float) -> dict[str, Any]:
    """A run whose model answers after `seconds`."""
    return run_body(latency_seconds=seconds)


def read_frames(response: httpx2.Response) -> Iterator[SSEFrame]:
    """The frames of an open streaming response, as they arrive."""
    decoder = SSEDecoder()
    for chunk in response.iter_bytes():
        yield from decoder.feed(chunk)
    yield from decoder.close()


def frame_event(frame: SSEFrame) -> RunEventRead:
    assert frame.data is not None, frame
    event = RunEventRead.model_validate_json(frame.data)
    assert frame.id == str(event.seq)
    assert frame.event == event.type
    return event


def seqs(events: list[RunEventRead]) -> list[int]:
    return [event.seq for event in events]
