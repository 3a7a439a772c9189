"""Query parameter types shared by the list routes.

Times are ISO 8601 instants with an offset (`2026-12-03T10:00:00Z`, `…+02:00`). A time without
one is refused (422 `request_invalid`, error type `timezone_aware`) instead of guessed: a naive
time means UTC to one client and local time to another. In a URL the `+` of an offset must be
sent as `%2B` (a bare `+` decodes to a space, which is then not a time); `Z` needs no escaping.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from app.errors import ValidationFailed

_ISO_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_text(value: Any) -> Any:
    # pydantic would also take a number as Unix seconds (`0.5`): the documented format is
    # ISO 8601, and a number is more likely a mistake than a timestamp
    if isinstance(value, str) and not _ISO_DATE_TIME.match(value):
        raise ValueError(
            "expected an ISO 8601 date and time with an offset, e.g. 2026-12-03T10:00:00Z"
        )
    return value


def _to_utc(value: datetime) -> datetime:
    # `0001-01-01T00:00:00+01:00` is a valid ISO 8601 time outside Python's range in UTC
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range once converted to UTC") from None


Instant = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_to_utc)]
"""An ISO 8601 date and time with an offset, converted to UTC."""


def check_time_range(after: datetime | None, before: datetime | None) -> None:
    """`created_after` must be earlier than `created_before` (422 `invalid_time_range`)."""
    if after is not None and before is not None and after >= before:
        raise ValidationFailed(
            "created_after must be earlier than created_before",
            code="invalid_time_range",
            details={"created_after": after.isoformat(), "created_before": before.isoformat()},
        )
