"""API keys: bearer credentials, each bound to one tenant.

Only the SHA-256 hex digest of a key is stored (`key_hash`, unique); the plaintext is shown once
when the key is created and never again. `prefix` is the first characters of the key, kept so that
users can tell their keys apart in listings. A key is revoked by setting `revoked_at`; rows are
kept for audit.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import (
    Base,
    StrEnumType,
    created_at_column,
    enum_check,
    id_column,
    tenant_column,
)


class ApiKeyRole(StrEnum):
    """What a key may do; each role may do everything the roles below it may."""

    ADMIN = "admin"  # manages the tenant's keys and settings, and everything a runner may do
    RUNNER = "runner"  # creates and controls runs, sessions, node runs; writes agents, bindings
    READER = "reader"  # reads everything of its tenant, changes nothing

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, required: ApiKeyRole) -> bool:
        """True when a key with this role may call a route that requires `required`."""
        return self.rank >= required.rank


_RANKS = {ApiKeyRole.READER: 0, ApiKeyRole.RUNNER: 1, ApiKeyRole.ADMIN: 2}


class ApiKey(Base):
    """A hashed bearer key of one tenant."""

    __tablename__ = "api_keys"
    __table_args__ = (enum_check("role", ApiKeyRole),)

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[uuid.UUID] = tenant_column(index=True)
    name: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    role: Mapped[ApiKeyRole] = mapped_column(StrEnumType(ApiKeyRole), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
