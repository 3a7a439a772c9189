"""A small incremental parser for `text/event-stream` bodies (the WHATWG SSE format).

Feed it the body's bytes as they arrive; it returns the frames that are complete.

- Lines end with CRLF, LF or CR, and with nothing else: a JSON payload may carry U+2028 or
  U+0085 unescaped, which `str.splitlines` (and so `Response.iter_lines`) would wrongly split.
- `field: value` lines set `id`, `event`, `retry` or add a `data` line (several `data` lines join
  with "\\n"); one space after the colon is dropped; a line without a colon is a field with an
  empty value; unknown fields are ignored.
- A line starting with `:` is a comment (servers send them as keep-alives).
- A blank line ends a frame. A frame with neither data nor comments is not returned; a frame
  cut off by the end of the stream is discarded, as the format requires.
- The body is UTF-8 (the format allows nothing else); a leading byte-order mark is skipped.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SSEFrame:
    """One dispatched frame. `data` is None when the frame had no `data` line."""

    event: str | None = None
    data: str | None = None
    id: str | None = None
    retry: int | None = None
    comments: tuple[str, ...] = ()


@dataclass
class _PendingFrame:
    event: str | None = None
    data: list[str] = field(default_factory=list)
    id: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not self.data and not self.comments

    def freeze(self) -> SSEFrame:
        return SSEFrame(
            event=self.event,
            data="\n".join(self.data) if self.data else None,
            id=self.id,
            retry=self.retry,
            comments=tuple(self.comments),
        )


class SSEDecoder:
    """Bytes in, complete frames out. One decoder per response body."""

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._started = False
        self._frame = _PendingFrame()

    def feed(self, chunk: bytes) -> list[SSEFrame]:
        """The frames completed by `chunk`."""
        return self._feed_text(self._text.decode(chunk), final=False)

    def close(self) -> list[SSEFrame]:
        """The frames completed by the end of the body; an unterminated frame is dropped."""
        frames = self._feed_text(self._text.decode(b"", final=True), final=True)
        self._frame = _PendingFrame()
        self._buffer = ""
        return frames

    def _feed_text(self, text: str, *, final: bool) -> list[SSEFrame]:
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        buffer = self._buffer + text
        frames: list[SSEFrame] = []
        start = 0
        for match in _LINE_END.finditer(buffer):
            if match.group() == "\r" and match.end() == len(buffer) and not final:
                break  # a CR at the end of a chunk may be the first half of a CRLF
            frame = self._line(buffer[start : match.start()])
            if frame is not None:
                frames.append(frame)
            start = match.end()
        self._buffer = buffer[start:]
        return frames

    def _line(self, line: str) -> SSEFrame | None:
        if not line:
            pending, self._frame = self._frame, _PendingFrame()
            return None if pending.is_empty() else pending.freeze()
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if not name:
            self._frame.comments.append(value)
        elif name == "data":
            self._frame.data.append(value)
        elif name == "event":
            self._frame.event = value
        elif name == "id":
            if "\0" not in value:
                self._frame.id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._frame.retry = int(value)
        return None
