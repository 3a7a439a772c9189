"""`app.client.__all__` is the client's public surface, and the error body parsing behind it."""

from __future__ import annotations

import httpx2

import app.client
from app.client import StrataAPIError, StrataError
from app.client._common import api_error


def test_the_public_names_are_exactly_the_exported_ones() -> None:
    public = {name for name in vars(app.client) if not name.startswith("_")}
    assert public == set(app.client.__all__)
    assert all(getattr(app.client, name) is not None for name in app.client.__all__)


def test_every_client_error_is_a_strata_error() -> None:
    for name in app.client.__all__:
        value = getattr(app.client, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, StrataError), name


def test_an_error_body_gives_code_message_and_details() -> None:
    body = {"error": {"code": "queue_full", "message": "later", "details": {"queued": 3}}}
    error = api_error(httpx2.Response(429, json=body))
    assert isinstance(error, StrataAPIError)
    assert (error.status_code, error.code, error.message, error.details) == (
        429,
        "queue_full",
        "later",
        {"queued": 3},
    )


def test_a_body_of_another_shape_keeps_the_status_and_text() -> None:
    error = api_error(httpx2.Response(502, text="<html>bad gateway</html>"))
    assert (error.status_code, error.code) == (502, "http_502")
    assert error.message == "<html>bad gateway</html>"
    assert api_error(httpx2.Response(500, json={"error": "boom"})).code == "http_500"
