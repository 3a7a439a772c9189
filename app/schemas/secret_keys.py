"""Recognising keys that name a secret, so stored configuration can refuse them.

Strata never stores a secret: configuration names a model provider or a `secret_ref`, and the
worker resolves it from server configuration when a run executes. Free-form objects (model
settings, tool entries…) could still smuggle one in as `{"api_key": "sk-…"}`; validators use
`secret_like_key_paths` to reject such objects before they reach a row.

A key is split into lower-case words (`apiKey`, `API-KEY` and `api_key` all give `api`, `key`) and
is secret-like when one of its words is a secret word (`token`, `password`, …) or two adjacent
words form one (`api key`, `private key`, …). Matching whole words keeps ordinary settings such
as `max_tokens` or `keyword` allowed. A key whose last word is `ref` or `refs` is a reference to a
secret, not a secret, and is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

_SECRET_WORDS = frozenset(
    {
        "apikey",
        "authorization",
        "credential",
        "credentials",
        "passphrase",
        "passwd",
        "password",
        "secret",
        "secrets",
        "token",
    }
)
_SECRET_WORD_PAIRS = frozenset(
    {("api", "key"), ("access", "key"), ("private", "key"), ("client", "secret")}
)
_REFERENCE_WORDS = frozenset({"ref", "refs"})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def _words(key: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(key)]


def is_secret_like_key(key: str) -> bool:
    """True when `key` names something that is, by its name, a secret value."""
    words = _words(key)
    if not words or words[-1] in _REFERENCE_WORDS:
        return False
    if any(word in _SECRET_WORDS for word in words):
        return True
    return any(pair in _SECRET_WORD_PAIRS for pair in pairwise(words))


def secret_like_key_paths(value: Any, path: str = "") -> Iterator[str]:
    """Yield the dotted path of every secret-like key in `value`, searching nested objects/lists."""
    if isinstance(value, dict):
        for key, item in value.items():
            item_path = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and is_secret_like_key(key):
                yield item_path
            yield from secret_like_key_paths(item, item_path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from secret_like_key_paths(item, f"{path}[{index}]")


def reject_secret_like_keys(value: dict[str, Any]) -> dict[str, Any]:
    """Pydantic after-validator: refuse an object holding a secret-like key anywhere inside."""
    paths = list(secret_like_key_paths(value))
    if paths:
        raise ValueError(
            f"secret-like key(s) {', '.join(paths)} are not allowed here: Strata stores no "
            "secrets; configure them on the server and refer to them (env.secret_refs, "
            "a named model provider)"
        )
    return value
