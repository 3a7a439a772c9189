"""JSON columns (`JSONType`, encoded by `app.db`'s engine): what no database can store in them
is stored as U+FFFD, the same on SQLite and PostgreSQL, instead of failing the statement."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from app.db import Database
from app.models import JSONType


async def test_nul_and_unpaired_surrogates_are_stored_as_replacement_characters(
    db: Database,
) -> None:
    value = {
        "text": "a\u0000b\ud800c",
        "key\u0000": ["\udc00", 1, None],
        "escape": "\\u0000",  # the six characters of an escape, not a NUL: stored as they are
    }

    async with db.reading() as session:
        stored = await session.scalar(select(bindparam("value", value, type_=JSONType)))

    assert stored == {
        "text": "a\ufffdb\ufffdc",
        "key\ufffd": ["\ufffd", 1, None],
        "escape": "\\u0000",
    }
