"""Fixtures of the compositor tests; the recording layer itself lives in `support`."""

import pytest

from .support import Journal


@pytest.fixture
def journal() -> Journal:
    """The shared log every recording layer of a test appends its steps to."""
    return []
