"""Giving memory back to the operating system after a burst.

When many event streams end (a burst of clients that went away), the buffers they held are
freed inside the process, but glibc's allocator keeps the freed pages of its heap for later:
the process's RSS stays at its peak (bench/streams.py measured +50 MiB for 200 readers of a 4 MiB
log, still held 5 s after they left). `MemoryTrimmer.soon()` asks for `malloc_trim(0)`, which
returns the free pages at the top and in the middle of the heap. It runs in a thread (ctypes
releases the GIL during the call), `delay` seconds after it was asked for (requests meanwhile
join it) and at most once per `min_interval` seconds, so streams ending all the time on a busy
server cost one trim every few seconds. Where the C library has no `malloc_trim` (musl,
macOS), it does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import time
from collections.abc import Callable


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_MALLOC_TRIM = _load_malloc_trim()


class MemoryTrimmer:
    """Spaced `malloc_trim(0)` calls, asked for with `soon()`; `trims` counts them."""

    def __init__(
        self,
        *,
        delay: float = 1.0,
        min_interval: float = 5.0,
        on_trim: Callable[[], None] | None = None,
    ) -> None:
        self.delay = delay
        self.min_interval = min_interval
        self.on_trim = on_trim
        self.trims = 0
        self._last = -min_interval
        self._task: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        return _MALLOC_TRIM is not None

    def soon(self) -> None:
        """Trim `delay` seconds from now, or once `min_interval` has passed since the last trim;
        a request while a trim is due joins it."""
        if _MALLOC_TRIM is None or (self._task is not None and not self._task.done()):
            return
        self._task = asyncio.get_running_loop().create_task(self._trim_later())

    async def _trim_later(self) -> None:
        wait = max(self.delay, self._last + self.min_interval - time.monotonic())
        await asyncio.sleep(wait)
        self._last = time.monotonic()
        if _MALLOC_TRIM is not None:
            await asyncio.to_thread(_MALLOC_TRIM, 0)
            self.trims += 1
            if self.on_trim is not None:
                self.on_trim()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
