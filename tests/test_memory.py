"""`MemoryTrimmer`: requests close together cost one `malloc_trim`, and trims are spaced."""

from __future__ import annotations

import asyncio

import pytest

from app.memory import MemoryTrimmer


async def test_requests_close_together_cost_one_trim_and_trims_are_spaced() -> None:
    counted: list[int] = []
    trimmer = MemoryTrimmer(delay=0.05, min_interval=0.3, on_trim=lambda: counted.append(1))
    if not trimmer.available:
        pytest.skip("this C library has no malloc_trim")
    try:
        for _ in range(100):
            trimmer.soon()
        await asyncio.sleep(0.2)
        assert trimmer.trims == 1 and counted == [1]

        trimmer.soon()  # within min_interval of the last trim: waits for it to pass
        await asyncio.sleep(0.05)
        assert trimmer.trims == 1
        await asyncio.sleep(0.4)
        assert trimmer.trims == 2 and counted == [1, 1]
    finally:
        await trimmer.close()
