"""Settings: the one place that reads the environment.

Every setting comes from a `STRATA_*` environment variable (or a `.env` file in the working
directory). Nothing else in the code base reads `os.environ`. Secrets are `SecretStr` so they never
show up in a repr, a log line or an error message.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./strata.db"


class ModelProviderKind(StrEnum):
    """Which client a named model provider uses."""

    OPENAI = "openai"  # any OpenAI-compatible chat completions endpoint (`llm.openai`)
    ANTHROPIC = "anthropic"  # Anthropic's Messages API or a compatible endpoint (`llm.anthropic`)
    TEST = "test"  # the deterministic in-process model (`llm.test`)


class ModelProviderSettings(BaseModel):
    """A model provider configured on the server; requests only name it.

    The key lives here (server configuration) and never in a request, a row or an event.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ModelProviderKind = ModelProviderKind.OPENAI
    base_url: str | None = None
    api_key: SecretStr | None = None


def _check_http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


class McpServerSettings(BaseModel):
    """An MCP server reachable over streamable HTTP; `tools.mcp` layers name it.

    The header values (typically an `Authorization` token) are secrets: they are sent to the
    server and nowhere else.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        description="The server's streamable HTTP endpoint, e.g. http://host:8000/mcp."
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="HTTP headers sent with every request (secrets)."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value)


class ToolEndpointSettings(BaseModel):
    """A caller-hosted tool endpoint; `tools.http` layers name it.

    Every call is signed with `secret` (HMAC-SHA256, see docs/tools-http.md); the secret itself
    never leaves the server.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Where tool calls are POSTed.")
    secret: SecretStr = Field(description="The HMAC key both sides share.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value)


class Settings(BaseSettings):
    """Strata's configuration. Field names map to `STRATA_<NAME>` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="STRATA_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # --- service -------------------------------------------------------------------------
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://…",
    )
    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port of the HTTP server.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Least severe level logged."
    )
    log_format: Literal["json", "console"] = Field(
        default="json",
        description="json: every stderr line is one JSON object (uvicorn's and libraries' "
        "lines too); console: the same lines for humans.",
    )
    auto_migrate: bool = Field(
        default=True,
        description="Upgrade the schema to head when `strata serve`/`strata worker` starts. "
        "Turn it off for fleets and run `strata migrate` once instead.",
    )
    bootstrap_default_tenant: bool = Field(
        default=True,
        description=(
            "On the first start of an empty database, create the `default` tenant and print "
            "one admin API key for it."
        ),
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Request bodies above this size get 413."
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token `/metrics` requires (an operator's, not a tenant's key); "
        "unset, `/metrics` answers 404.",
    )
    db_pool_size: int = Field(
        default=20,
        ge=1,
        description="PostgreSQL pooled connections per process (a fixed pool: work beyond it "
        "waits for a connection, up to STRATA_DB_CONNECT_TIMEOUT_SECONDS, instead of opening "
        "more); besides the pool, a process holds the LISTEN connection and, with a worker, "
        "the heartbeat's.",
    )
    db_writers: int = Field(
        default=4,
        ge=1,
        le=64,
        description="PostgreSQL writer tasks per process. Writes queue up and each free writer "
        "commits what is queued as one transaction (group commit) on a pooled connection; "
        "several, so that a batch waiting on a row lock or on the network does not hold up the "
        "others. At most half of STRATA_DB_POOL_SIZE (reads need connections too). SQLite always "
        "has one (it allows one writer at a time).",
    )
    db_connect_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Connecting (or waiting for a pooled connection) fails after this; the API "
        "then answers 503 `database_unavailable`.",
    )

    # --- worker --------------------------------------------------------------------------
    worker_concurrency: int = Field(
        default=1000,
        ge=1,
        description="Runs one worker executes at the same time. Runs mostly wait on models, so "
        "a process holds many: about 42 KiB and no database connection each while they wait "
        "(bench/inflight.py).",
    )
    worker_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Fallback poll interval; workers are normally woken by notifications.",
    )
    lease_seconds: float = Field(
        default=20.0, gt=0, description="A run whose lease is older than this is a lost run."
    )
    heartbeat_seconds: float = Field(default=5.0, gt=0, description="Lease renewal interval.")
    worker_health_file: str | None = Field(
        default=None,
        description="If set, the worker touches this file after each heartbeat's database "
        "round trip, for container health checks.",
    )
    sweep_seconds: float = Field(default=5.0, gt=0, description="Lost-run sweeper interval.")
    shutdown_grace_seconds: float = Field(
        default=30.0, ge=0, description="How long in-flight runs may finish on shutdown."
    )

    # --- retention -----------------------------------------------------------------------
    retention_days: float = Field(
        default=30.0,
        ge=0,
        description="Terminal runs that finished more than this many days ago are deleted with "
        "their events (by every worker, and by `strata retention run`); 0 keeps runs forever.",
    )
    retention_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often each worker runs a retention pass."
    )
    retention_batch_size: int = Field(
        default=200,
        ge=1,
        le=10_000,
        description="Runs deleted per transaction: each batch commits on its own, so no lock "
        "is held for long.",
    )

    # --- runs ----------------------------------------------------------------------------
    run_max_timeout_seconds: float = Field(
        default=3600.0, gt=0, description="Cap (and default) for a run's wall-clock timeout."
    )
    run_max_model_requests: int = Field(
        default=500, ge=1, description="Cap (and default) for a run's model-request budget."
    )
    wait_max_seconds: float = Field(
        default=60.0, gt=0, description="Cap for `/wait?timeout_seconds=`."
    )
    sse_keepalive_seconds: float = Field(
        default=15.0, gt=0, description="Idle event streams send a keep-alive comment this often."
    )
    sse_stall_seconds: float = Field(
        default=30.0,
        gt=0,
        description="An event stream whose reader has not taken the data already sent for this "
        "long (the socket's buffers are full) is dropped: the connection is closed and its "
        "memory freed. The reader may reconnect with `Last-Event-ID`.",
    )
    key_cache_seconds: float = Field(
        default=5.0,
        gt=0,
        description="A process trusts an API key it looked up for at most this long, so a revoked "
        "key stops working (and its open event streams end) within this time everywhere.",
    )
    max_queued_runs_per_tenant: int = Field(
        default=10_000, ge=1, description="More queued runs than this answer 429."
    )
    event_text_flush_seconds: float = Field(
        default=0.1, ge=0, description="Streamed text deltas are coalesced for this long."
    )
    event_text_flush_chars: int = Field(
        default=4096, ge=1, description="…or until this many characters are buffered."
    )
    event_tool_result_max_chars: int = Field(
        default=16_000,
        ge=1,
        description="A `tool_result` event carries at most this many characters of the result; "
        "a longer one is cut and marked `truncated` (the model always gets the whole result).",
    )

    # --- model providers -----------------------------------------------------------------
    model_providers: Annotated[dict[str, ModelProviderSettings], NoDecode] = Field(
        default_factory=dict,
        description=(
            "JSON object: provider name → {kind, base_url, api_key}; kind is `openai`, "
            "`anthropic` or `test`. A provider named `test` always exists and runs the "
            "deterministic `llm.test` model."
        ),
    )

    # --- tools ---------------------------------------------------------------------------
    mcp_servers: Annotated[dict[str, McpServerSettings], NoDecode] = Field(
        default_factory=dict,
        description="JSON object: MCP server name → {url, headers}; `tools.mcp` layers name them.",
    )
    tool_endpoints: Annotated[dict[str, ToolEndpointSettings], NoDecode] = Field(
        default_factory=dict,
        description="JSON object: endpoint name → {url, secret}; `tools.http` layers name them.",
    )

    @field_validator("model_providers", "mcp_servers", "tool_endpoints", mode="before")
    @classmethod
    def _parse_json_table(cls, value: object) -> object:
        if isinstance(value, str):
            import json

            return json.loads(value) if value.strip() else {}
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def get_settings() -> Settings:
    """Read the settings from the environment (a fresh object each call; callers keep it)."""
    return Settings()
