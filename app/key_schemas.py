"""Request and response schemas of `/v1/keys`, shared by the API and the Python SDK.

They live outside `app.api` so that `app.client` can return them without importing FastAPI.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.models import ApiKey, ApiKeyRole


class KeyCreate(BaseModel):
    """`POST /v1/keys`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"role": "runner", "label": "workflow engine"}]},
    )

    role: ApiKeyRole = Field(description="`admin`, `runner` or `reader`.")
    label: str | None = Field(
        default=None, min_length=1, max_length=255, description="To recognise the key by."
    )


class KeyRead(BaseModel):
    """An API key as its tenant's admins see it: never the key itself."""

    id: uuid.UUID
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    role: ApiKeyRole
    label: str | None
    created_at: datetime
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: ApiKey) -> KeyRead:
        return cls(
            id=row.id,
            prefix=row.prefix,
            role=row.role,
            label=row.name,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


class KeyCreated(KeyRead):
    key: str = Field(description="The key: shown in this response only, never again.")


class KeyList(BaseModel):
    items: list[KeyRead] = Field(description="Newest first, revoked keys included.")
