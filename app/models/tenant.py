"""Tenants: the unit of isolation.

Every other row in the database belongs to exactly one tenant through an indexed `tenant_id`
foreign key, and every query filters by the caller's tenant. Tenant names are unique (the CLI
finds a tenant by name: `strata keys create --tenant NAME`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column, id_column


class Tenant(Base):
    """A tenant: owns API keys, agents, bindings, sessions and runs."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = id_column()
    name: Mapped[str] = mapped_column(sa.String(255), nullable=False, unique=True)
    created_at: Mapped[datetime] = created_at_column()
