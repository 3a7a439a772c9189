"""Strata: a standalone agent-backend HTTP service.

Workflow engines post agent runs; workers execute them through the layer compositor
(`app.compositor`) and pydantic-ai; every run ends in exactly one terminal state with a new
session snapshot. See `docs/ARCHITECTURE.md` for the map of the packages.
"""

__version__ = "0.1.0"
