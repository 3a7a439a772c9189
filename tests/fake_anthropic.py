"""A fake Anthropic Messages API server for tests of the real HTTP model path of `llm.anthropic`.

`FakeAnthropic` serves `POST /v1/messages` (with or without `?beta=true`) from a small Starlette
app under uvicorn, in a background thread, on 127.0.0.1 and a free port. Point an `anthropic`
model provider at `fake.base_url` and the service talks to it as it would to Anthropic: the
`anthropic` SDK, retries, streaming and all.

Behaviour, in this order, for every request:

1. The request is recorded (`fake.requests`): its JSON body and its headers (lower-cased names;
   `fake.requests[0].api_key` is the key the SDK sent, as `x-api-key` or as a bearer token).
2. The answer is the next scripted reply, if any: `reply_text`, `reply_tool_use` (one or more
   `tool_use` blocks) or `reply_error` (an HTTP status with Anthropic's error body
   `{"type": "error", "error": {"type", "message"}}`; with `repeat=True` it answers every later
   request, for the errors the SDK retries, until `reset()`).
3. A request that carries `temperature`, `top_p` or `top_k` under an `anthropic-version` of
   2026-10-21 or later is refused with 400 `invalid_request_error` ("Extra inputs are not
   permitted"), as Anthropic's API refuses it (that version removed the sampling settings;
   2023-06-01 keeps them).
4. With nothing scripted: when the request offers tools and its last message carries no
   `tool_result` block, it calls the first tool with generated arguments; otherwise it answers
   `fake reply to: <last user text>`.

Both response modes are served: a `message` object, or with `"stream": true` the Messages API's
server-sent events — `message_start`, per content block `content_block_start`,
`content_block_delta` (`text_delta` chunks of `chunk_chars` characters, or one
`input_json_delta`) and `content_block_stop`, then `message_delta` (stop reason and output
tokens) and `message_stop`, with a `ping` after the start. Token counts are whitespace-separated
words, so they are deterministic.

Fixtures: `fake_anthropic_server` (session) and `fake_anthropic` (function: empty script, no
recorded requests; cleared again afterwards).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.layers.llm import example_for_schema
from tests.threaded_server import ThreadedServer

# --- scripted replies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TextReply:
    text: str
    chunk_chars: int | None = None


@dataclass(frozen=True)
class ToolUse:
    name: str
    input: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None  # generated when absent: toolu_<name>_<request number>_<index>


@dataclass(frozen=True)
class ToolUseReply:
    calls: tuple[ToolUse, ...]


@dataclass(frozen=True)
class ErrorReply:
    status: int
    message: str
    type: str = "invalid_request_error"
    headers: Mapping[str, str] = field(default_factory=dict)
    repeat: bool = False

    def body(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.type, "message": self.message}}


Reply = TextReply | ToolUseReply | ErrorReply


# --- recorded requests ----------------------------------------------------------------------------


def _block_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(block.get("text", ""))
            for block in content
            if isinstance(block, Mapping) and block.get("type") == "text"
        )
    return ""


@dataclass(frozen=True)
class RecordedRequest:
    body: dict[str, Any]
    headers: dict[str, str]
    path: str

    @property
    def api_key(self) -> str | None:
        """The key the client sent: `x-api-key`, or a bearer token (what SDK 2.x sends)."""
        if "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        authorization = self.headers.get("authorization", "")
        return authorization.removeprefix("Bearer ") if authorization else None

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def system_text(self) -> str:
        return _block_text(self.body.get("system"))

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.body.get("tools") or [])

    @property
    def tool_names(self) -> list[str]:
        return [str(tool.get("name")) for tool in self.tools]

    @property
    def user_texts(self) -> list[str]:
        texts = [_block_text(m.get("content")) for m in self.messages if m.get("role") == "user"]
        return [text for text in texts if text]

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        """Every `tool_result` block the request carries, in order."""
        return [
            block
            for message in self.messages
            if isinstance(message.get("content"), list)
            for block in message["content"]
            if isinstance(block, Mapping) and block.get("type") == "tool_result"
        ]

    @staticmethod
    def result_text(block: Mapping[str, Any]) -> str:
        """The text of a `tool_result` block (its content is a string or text blocks)."""
        return _block_text(block.get("content"))


# --- the controller -------------------------------------------------------------------------------


class FakeAnthropic:
    """Script, inspect and serve the fake. Thread-safe: the server runs on another thread."""

    def __init__(self, *, chunk_chars: int = 8) -> None:
        self.chunk_chars = chunk_chars
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        app = Starlette(routes=[Route("/v1/messages", self._handle, methods=["POST"])])
        self._server = ThreadedServer(app, name="fake-anthropic")

    def reply_text(self, text: str, *, chunk_chars: int | None = None) -> None:
        self._enqueue(TextReply(text, chunk_chars))

    def reply_tool_use(self, *calls: ToolUse) -> None:
        self._enqueue(ToolUseReply(tuple(calls)))

    def reply_error(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        headers: Mapping[str, str] | None = None,
        repeat: bool = False,
    ) -> None:
        self._enqueue(ErrorReply(status, message, type, dict(headers or {}), repeat))

    def _enqueue(self, reply: Reply) -> None:
        with self._lock:
            self._script.append(reply)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def base_url(self) -> str:
        return self._server.url

    def provider(self, api_key: str) -> dict[str, Any]:
        """A `Settings.model_providers` entry pointing at this fake."""
        return {"kind": "anthropic", "base_url": self.base_url, "api_key": api_key}

    def __enter__(self) -> FakeAnthropic:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop()

    async def _handle(self, request: Request) -> Response:
        body = await request.json()
        recorded = RecordedRequest(
            body=body,
            headers={k.lower(): v for k, v in request.headers.items()},
            path=request.url.path,
        )
        with self._lock:
            self._requests.append(recorded)
            number = len(self._requests)
            reply = self._script[0] if self._script else None
            if reply is not None and not (isinstance(reply, ErrorReply) and reply.repeat):
                self._script.popleft()
        refused = _refused_sampling(recorded)
        if refused is not None:
            reply = refused
        elif reply is None:
            reply = _default_reply(recorded)
        if isinstance(reply, ErrorReply):
            return JSONResponse(reply.body(), status_code=reply.status, headers=dict(reply.headers))
        answer = _Answer.of(reply, recorded, number)
        if recorded.stream:
            return StreamingResponse(
                self._events(answer, answer.chunk_chars or self.chunk_chars),
                media_type="text/event-stream",
            )
        return JSONResponse(answer.message())

    async def _events(self, answer: _Answer, chunk_chars: int) -> AsyncIterator[str]:
        for name, data in answer.events(chunk_chars):
            yield f"event: {name}\ndata: {json.dumps(data)}\n\n"
            await asyncio.sleep(0)


_SAMPLING_SETTINGS = ("temperature", "top_p", "top_k")
_SAMPLING_REMOVED_IN = "2026-10-21"


def _refused_sampling(request: RecordedRequest) -> ErrorReply | None:
    version = request.headers.get("anthropic-version", "")
    given = [name for name in _SAMPLING_SETTINGS if name in request.body]
    if not given or version < _SAMPLING_REMOVED_IN:
        return None
    return ErrorReply(400, f"{given[0]}: Extra inputs are not permitted", "invalid_request_error")


def _default_reply(request: RecordedRequest) -> Reply:
    messages = request.messages
    last = messages[-1] if messages else {}
    answered = isinstance(last.get("content"), list) and any(
        isinstance(block, Mapping) and block.get("type") == "tool_result"
        for block in last["content"]
    )
    if request.tools and not answered:
        tool = request.tools[0]
        arguments = example_for_schema(tool.get("input_schema") or {})
        return ToolUseReply(
            (ToolUse(str(tool.get("name")), arguments if isinstance(arguments, dict) else {}),)
        )
    users = request.user_texts
    return TextReply(f"fake reply to: {users[-1] if users else ''}")


def _words(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class _Answer:
    id: str
    model: str
    text: str | None
    tool_uses: tuple[tuple[str, str, dict[str, Any]], ...]  # (id, name, input)
    input_tokens: int
    chunk_chars: int | None = None

    @classmethod
    def of(cls, reply: TextReply | ToolUseReply, request: RecordedRequest, number: int) -> _Answer:
        words = sum(_words(_block_text(m.get("content"))) for m in request.messages)
        words += _words(request.system_text)
        tool_uses = (
            tuple(
                (call.id or f"toolu_{call.name}_{number}_{index}", call.name, dict(call.input))
                for index, call in enumerate(reply.calls)
            )
            if isinstance(reply, ToolUseReply)
            else ()
        )
        return cls(
            id=f"msg_fake_{number}",
            model=request.model or "fake",
            text=reply.text if isinstance(reply, TextReply) else None,
            tool_uses=tool_uses,
            input_tokens=max(1, words),
            chunk_chars=reply.chunk_chars if isinstance(reply, TextReply) else None,
        )

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.tool_uses else "end_turn"

    @property
    def output_tokens(self) -> int:
        return _words(self.text or "") + sum(
            1 + _words(json.dumps(args)) for _, _, args in self.tool_uses
        )

    def _blocks(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if self.text is not None:
            blocks.append({"type": "text", "text": self.text})
        blocks.extend(
            {"type": "tool_use", "id": id, "name": name, "input": args}
            for id, name, args in self.tool_uses
        )
        return blocks

    def message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self._blocks(),
            "stop_reason": self.stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
        }

    def events(self, chunk_chars: int) -> Iterator[tuple[str, dict[str, Any]]]:
        start = {
            **self.message(),
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 1},
        }
        yield "message_start", {"type": "message_start", "message": start}
        yield "ping", {"type": "ping"}
        for index, block in enumerate(self._blocks()):
            if block["type"] == "text":
                opening: dict[str, Any] = {"type": "text", "text": ""}
                deltas = [
                    {"type": "text_delta", "text": block["text"][i : i + chunk_chars]}
                    for i in range(0, len(block["text"]), chunk_chars)
                ]
            else:
                opening = {**block, "input": {}}
                deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
            for delta in deltas:
                yield (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            yield "content_block_stop", {"type": "content_block_stop", "index": index}
        yield (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": self.output_tokens},
            },
        )
        yield "message_stop", {"type": "message_stop"}


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_anthropic_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def fake_anthropic(fake_anthropic_server: FakeAnthropic) -> Iterator[FakeAnthropic]:
    fake_anthropic_server.reset()
    yield fake_anthropic_server
    fake_anthropic_server.reset()
