"""The declarative base and the column types every model shares.

Invariants every model relies on:

- Constraint and index names come from `NAMING_CONVENTION`, so migrations can name what they drop
  and the names are the same on SQLite and PostgreSQL. Names that the convention would make longer
  than PostgreSQL's 63-character limit are given explicitly in the model (SQLAlchemy would
  otherwise shorten them with a hash on PostgreSQL only).
- `Mapped[uuid.UUID]` maps to `sa.Uuid` and `Mapped[datetime]` to `UTCDateTime` through
  `Base.type_annotation_map`, so a column cannot silently fall back to a naive `DateTime`.
- Primary keys are UUIDv7 (`new_id`, monotonic within a process): time-ordered, so rows insert at
  the right edge of the primary-key index and ids sort by creation time.
- Every `*_at` column is `UTCDateTime`: it refuses naive datetimes on the way in and always hands
  back timezone-aware UTC datetimes, on SQLite (which stores no offset) as on PostgreSQL.
- Enum columns are `StrEnumType` (a `String(32)` that reads back the `StrEnum` member) plus a
  named CHECK constraint built by `enum_check`, rather than a native database enum: adding a member
  is then a CHECK change on both databases instead of an `ALTER TYPE` on PostgreSQL only.
- JSON columns are `JSONType`: portable `JSON`, `JSONB` on PostgreSQL. Python `None` is stored as
  SQL NULL (`none_as_null`), never as the JSON literal `null`. JSON values are not mutation-tracked:
  assign a new value instead of changing a dict in place.
- Python-side defaults (`default=`) fill ids, timestamps and initial statuses when the ORM or Core
  inserts; a few constant defaults are also server defaults so that hand-written SQL works.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
import uuid_utils
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    # The column names already identify a foreign key within its table; leaving the referred
    # table out keeps every name under PostgreSQL's 63 characters.
    "fk": "fk_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

ENUM_LENGTH = 32
"""Width of every enum column; a member value longer than this is a programming error."""

EXTERNAL_ID_LENGTH = 64
"""Width of ids that callers own (workflow ids, node ids, account ids…): opaque strings."""


def new_id() -> uuid.UUID:
    """A new UUIDv7 as a standard-library `uuid.UUID` (what `sa.Uuid` binds and returns)."""
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that only accepts and only returns aware UTC datetimes.

    SQLite stores datetimes as text without an offset, so values are converted to UTC before they
    are bound (and the offset dropped there); whatever the database returns is re-labelled as UTC.
    Naive datetimes are rejected instead of guessed: a naive value is a bug at the call site.

    In queries, compare with bound aware datetimes (`Run.lease_expires_at < utcnow()`), not with
    the database clock (`func.now()`): SQLite's `CURRENT_TIMESTAMP` is text in another format
    (second precision), so it compares correctly with stored values only to the second.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} given; use an aware UTC datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


E = TypeVar("E", bound=StrEnum)


class StrEnumType(sa.TypeDecorator[E]):
    """A `String(32)` column that binds a `StrEnum`'s value and reads back the member.

    The allowed values are enforced by the database through `enum_check`; reading a value that is
    not a member raises `ValueError` (it can only get there by bypassing the CHECK).
    """

    impl = sa.String(ENUM_LENGTH)
    cache_ok = True

    def __init__(self, enum: type[E]) -> None:
        super().__init__()
        self.enum = enum
        # value → member: a dict lookup instead of `Enum.__call__` on every bind and row
        self._members: dict[str, E] = {member.value: member for member in enum}

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        member = self._members.get(value)
        return member.value if member is not None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        if value is None:
            return None
        member = self._members.get(value)
        return member if member is not None else self.enum(value)

    def __repr__(self) -> str:
        return f"StrEnumType({self.enum.__name__})"


def enum_check(column: str, enum: type[StrEnum]) -> sa.CheckConstraint:
    """A CHECK constraint named `ck_<table>_<column>` allowing exactly `enum`'s values.

    NULL passes a CHECK, so nullable enum columns stay nullable.
    """
    for member in enum:
        if len(member.value) > ENUM_LENGTH or "'" in member.value:
            raise ValueError(f"{enum.__name__}.{member.name} cannot be stored in an enum column")
    allowed = ", ".join(f"'{member.value}'" for member in enum)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=column)


JSONType = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)
"""JSON column type: `JSON` (text on SQLite), `JSONB` on PostgreSQL; `None` is SQL NULL."""


class Base(DeclarativeBase):
    """Declarative base of every Strata model; its `metadata` carries the naming convention."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        uuid.UUID: sa.Uuid(),
        datetime: UTCDateTime(),
    }


def id_column() -> Mapped[uuid.UUID]:
    """The UUIDv7 primary key column."""
    return mapped_column(sa.Uuid(), primary_key=True, default=new_id)


def tenant_column(*, index: bool = False) -> Mapped[uuid.UUID]:
    """The owning tenant. `index=True` unless another index already leads with `tenant_id`."""
    return mapped_column(sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False, index=index)


def created_at_column() -> Mapped[datetime]:
    """When the row was inserted (set by the application, in UTC)."""
    return mapped_column(UTCDateTime(), nullable=False, default=utcnow)


def updated_at_column() -> Mapped[datetime]:
    """When the row last changed; refreshed by every ORM flush or Core UPDATE of the row."""
    return mapped_column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)


def external_id_column(*, nullable: bool = False, index: bool = False) -> Mapped[Any]:
    """An id owned by a caller (workflow, node, account…): an opaque `String(64)`."""
    return mapped_column(sa.String(EXTERNAL_ID_LENGTH), nullable=nullable, index=index)
