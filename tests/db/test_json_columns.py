"""JSON columns (`JSONType`, encoded by `app.db`'s engine): text no database can store in them
is stored as U+FFFD and integers beyond 64 bits as their digits, the same on SQLite and
PostgreSQL, instead of failing the statement."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from app.db import Database
from app.models import JSONType


async def test_nul_surrogates_and_integers_beyond_64_bits_are_stored_replaced(
    db: Database,
) -> None:
    value = {
        "text": "a\u0000b\ud800c",
        "key\u0000": ["\udc00", 1, None],
        "escape": "\\u0000",  # the six characters of an escape, not a NUL: stored as they are
        "big": 2**70,  # beyond what orjson writes: kept as its digits
        "small": 2**64 - 1,
    }

    async with db.reading() as session:
        stored = await session.scalar(select(bindparam("value", value, type_=JSONType)))

    assert stored == {
        "text": "a\ufffdb\ufffdc",
        "key\ufffd": ["\ufffd", 1, None],
        "escape": "\\u0000",
        "big": "1180591620717411303424",
        "small": 2**64 - 1,
    }
