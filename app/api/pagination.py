"""Opaque cursors for id-ordered lists (ids are UUIDv7, so id order is creation order)."""

from __future__ import annotations

import base64
import uuid

from app.errors import BadRequest


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise BadRequest("cursor is not one this API returned", code="invalid_cursor") from None
