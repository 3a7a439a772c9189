"""The error hierarchy of the service.

Domain code raises `AppError` subclasses; `app.api.errors` renders every one of them in the same
JSON shape: `{"error": {"code": ..., "message": ..., "details": {...}}}` with the class's HTTP
status. `code` is stable: clients may branch on it. This module imports nothing from FastAPI.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    """Base class. `status_code` and `code` are class defaults that an instance may override."""

    status_code: ClassVar[int] = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details or {}
        self.headers: dict[str, str] = headers or {}


class BadRequest(AppError):
    status_code = 400
    code = "bad_request"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class ValidationFailed(AppError):
    """A request that parses but cannot be executed (unknown layer type, bad snapshot, …)."""

    status_code = 422
    code = "validation_failed"


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"
