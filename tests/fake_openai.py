"""A fake OpenAI-compatible chat completions server for tests of the real HTTP model path.

`FakeOpenAI` serves `POST /v1/chat/completions` from a small Starlette app under uvicorn, in a
background thread, on 127.0.0.1 and a free port. Point a model provider at `fake.base_url`
(it ends in `/v1`, like OpenAI's own base URL) and the service talks to it exactly as it would
to OpenAI: the `openai` SDK, retries, streaming and all.

Behaviour, in this order, for every request:

1. The request is recorded (`fake.requests`): its JSON body and its headers (names lower-cased,
   so `fake.requests[0].authorization` is what the server sent as `Authorization`).
2. The answer is the next scripted reply, if any. Tests queue them with `reply_text`,
   `reply_tool_calls` (one or more calls, each a tool name and JSON arguments) and `reply_error`
   (an HTTP status with OpenAI's error body `{"error": {"message", "type", "code"}}`). A reply is
   used once, except an error queued with `repeat=True`, which answers every later request (for
   errors the SDK retries, such as 5xx) until `reset()`.
3. With nothing scripted the fake answers deterministically: when the request offers tools and
   its last message is not a tool result, it calls the first tool with generated arguments
   (each required parameter gets a small example value: `"test"`, `0`, `false`, `[]`, the first
   enum member…); otherwise it answers the text `fake reply to: <last user message>`.

Both response modes are served: a plain `chat.completion` object, or with `"stream": true`
server-sent `chat.completion.chunk` events ending with `data: [DONE]`: a role chunk, the text in
chunks of `chunk_chars` characters (8 unless the fake or the reply says otherwise), each tool call
as a header chunk plus an arguments chunk, a chunk with `finish_reason`, then a usage-only chunk
when `stream_options.include_usage` is set. Token counts are whitespace-separated words, so they
are deterministic.

Fixtures: `fake_openai_server` (session) starts one server; `fake_openai` (function) hands it to
a test with an empty script and no recorded requests, and clears both again afterwards.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.layers.llm import example_for_schema

__all__ = [
    "ErrorReply",
    "FakeOpenAI",
    "RecordedRequest",
    "Reply",
    "TextReply",
    "ToolCall",
    "ToolCallsReply",
    "fake_openai",
    "fake_openai_server",
    "message_text",
]


class _AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII characters escaped, as the streamed chunks are (`json.dumps`): a
    lone surrogate in a scripted text or error message goes out as `\\udXXX`, as a provider
    could send it, instead of failing to encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


# --- scripted replies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TextReply:
    """The assistant answers `text` (streamed in chunks of `chunk_chars`, or the fake's default)."""

    text: str
    chunk_chars: int | None = None


@dataclass(frozen=True)
class ToolCall:
    """One tool call: `arguments` is a JSON object, or a raw string sent as is (even invalid)."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None  # generated when absent: call_<name>_<request number>_<index>

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments))


@dataclass(frozen=True)
class ToolCallsReply:
    """The assistant calls these tools (in one response) and says nothing else."""

    calls: tuple[ToolCall, ...]


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error with OpenAI's error body."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    repeat: bool = False  # answer every later request too, until `reset()`

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}


Reply = TextReply | ToolCallsReply | ErrorReply


# --- recorded requests ----------------------------------------------------------------------------


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a chat message, whether its `content` is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received."""

    body: dict[str, Any]
    headers: dict[str, str]  # lower-cased names

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

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
    def tools(self) -> list[dict[str, Any]]:
        return list(self.body.get("tools") or [])

    @property
    def tool_names(self) -> list[str]:
        return [tool.get("function", {}).get("name", "") for tool in self.tools]

    def texts(self, *roles: str) -> list[str]:
        """The texts of the messages with one of these roles, in order."""
        return [message_text(m) for m in self.messages if m.get("role") in roles]

    @property
    def system_texts(self) -> list[str]:
        """System prompt / instructions, sent as `system` or `developer` messages."""
        return self.texts("system", "developer")

    @property
    def user_texts(self) -> list[str]:
        return self.texts("user")

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        """The `role: tool` messages: `tool_call_id` and `content`."""
        return [m for m in self.messages if m.get("role") == "tool"]


# --- the controller -------------------------------------------------------------------------------


class FakeOpenAI:
    """Script, inspect and serve the fake. Thread-safe: the server runs on another thread."""

    def __init__(self, *, chunk_chars: int = 8) -> None:
        self.chunk_chars = chunk_chars
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # scripting ------------------------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def reply_text(self, text: str, *, chunk_chars: int | None = None) -> None:
        self.enqueue(TextReply(text, chunk_chars))

    def reply_tool_call(
        self,
        name: str,
        arguments: Mapping[str, Any] | str | None = None,
        *,
        call_id: str | None = None,
    ) -> None:
        self.enqueue(ToolCallsReply((ToolCall(name, arguments or {}, call_id),)))

    def reply_tool_calls(self, *calls: ToolCall) -> None:
        self.enqueue(ToolCallsReply(tuple(calls)))

    def reply_error(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        repeat: bool = False,
    ) -> None:
        self.enqueue(ErrorReply(status, message, type, code, dict(headers or {}), repeat))

    @property
    def pending(self) -> int:
        """Scripted replies not used yet (a repeating error counts once)."""
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        """Forget the script and the recorded requests."""
        with self._lock:
            self._script.clear()
            self._requests.clear()

    # inspection -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the fake OpenAI server is not started")
        return f"http://127.0.0.1:{self._port}/v1"

    def provider(self, api_key: str) -> dict[str, Any]:
        """A `Settings.model_providers` entry pointing at this fake."""
        return {"kind": "openai", "base_url": self.base_url, "api_key": api_key}

    # serving --------------------------------------------------------------------------------

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/v1/chat/completions", self._handle, methods=["POST"])])
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="fake-openai", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _handle(self, request: Request) -> Response:
        body = await request.json()
        recorded = RecordedRequest(
            body=body, headers={k.lower(): v for k, v in request.headers.items()}
        )
        with self._lock:
            self._requests.append(recorded)
            number = len(self._requests)
            reply = self._script[0] if self._script else None
            if reply is not None and not (isinstance(reply, ErrorReply) and reply.repeat):
                self._script.popleft()
        if reply is None:
            reply = _default_reply(recorded)
        if isinstance(reply, ErrorReply):
            return _AsciiJSONResponse(
                reply.body(), status_code=reply.status, headers=dict(reply.headers)
            )
        answer = _Answer.of(reply, recorded, number)
        if recorded.stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                self._chunks(answer, include_usage), media_type="text/event-stream"
            )
        return _AsciiJSONResponse(answer.completion())

    async def _chunks(self, answer: _Answer, include_usage: bool) -> AsyncIterator[str]:
        for chunk in answer.chunks(answer.chunk_chars or self.chunk_chars, include_usage):
            yield f"data: {json.dumps(chunk)}\n\n"
            await asyncio.sleep(0)
        yield "data: [DONE]\n\n"


# --- answers --------------------------------------------------------------------------------------


def _default_reply(request: RecordedRequest) -> Reply:
    messages = request.messages
    answered = bool(messages) and messages[-1].get("role") == "tool"
    if request.tools and not answered:
        function = request.tools[0].get("function", {})
        arguments = example_for_schema(function.get("parameters") or {})
        return ToolCallsReply(
            (ToolCall(function.get("name", ""), arguments if isinstance(arguments, dict) else {}),)
        )
    users = request.user_texts
    return TextReply(f"fake reply to: {users[-1] if users else ''}")


def _words(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class _Answer:
    """A text or tool-call answer rendered as OpenAI JSON, either whole or as stream chunks."""

    id: str
    model: str
    text: str | None
    tool_calls: tuple[tuple[str, str, str], ...]  # (id, name, arguments JSON)
    prompt_tokens: int
    chunk_chars: int | None = None

    @classmethod
    def of(
        cls, reply: TextReply | ToolCallsReply, request: RecordedRequest, number: int
    ) -> _Answer:
        prompt_tokens = max(1, sum(_words(message_text(m)) for m in request.messages))
        text = reply.text if isinstance(reply, TextReply) else None
        calls = (
            tuple(
                (call.id or f"call_{call.name}_{number}_{index}", call.name, call.arguments_json())
                for index, call in enumerate(reply.calls)
            )
            if isinstance(reply, ToolCallsReply)
            else ()
        )
        chunk_chars = reply.chunk_chars if isinstance(reply, TextReply) else None
        return cls(
            f"chatcmpl-fake-{number}",
            request.model or "fake",
            text,
            calls,
            prompt_tokens,
            chunk_chars,
        )

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"

    def usage(self) -> dict[str, int]:
        completion = _words(self.text or "") + sum(
            1 + _words(args) for _, _, args in self.tool_calls
        )
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def _envelope(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": int(time.time()), "model": self.model}

    def completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": id, "type": "function", "function": {"name": name, "arguments": args}}
                for id, name, args in self.tool_calls
            ]
        return {
            **self._envelope("chat.completion"),
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            "usage": self.usage(),
        }

    def chunks(self, chunk_chars: int, include_usage: bool) -> Iterator[dict[str, Any]]:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                **self._envelope("chat.completion.chunk"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }

        yield chunk({"role": "assistant", "content": ""})
        text = self.text or ""
        for start in range(0, len(text), chunk_chars):
            yield chunk({"content": text[start : start + chunk_chars]})
        for index, (id, name, args) in enumerate(self.tool_calls):
            header = {"index": index, "id": id, "type": "function"}
            yield chunk({"tool_calls": [{**header, "function": {"name": name, "arguments": ""}}]})
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": args}}]})
        yield chunk({}, self.finish_reason)
        if include_usage:
            yield {**self._envelope("chat.completion.chunk"), "choices": [], "usage": self.usage()}


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAI]:
    """One fake server for the whole session (tests get it through `fake_openai`)."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The fake server with an empty script and no recorded requests; cleared again after."""
    fake_openai_server.reset()
    yield fake_openai_server
    fake_openai_server.reset()
