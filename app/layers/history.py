"""`pydantic_ai.history`: the message history of the session, kept in runtime state.

The runner passes `messages` as the agent's message history and stores the run's complete history
back (system instructions stripped: they are per-run and come from the prompt layers again).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic_ai.messages import ModelMessage

from app.compositor import EmptyLayerConfig, NoLayerDeps
from app.layers.base import HistoryLayer


class HistoryState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[ModelMessage] = Field(default_factory=list)


class MessageHistoryLayer(HistoryLayer[NoLayerDeps, EmptyLayerConfig, HistoryState]):
    type_id = "pydantic_ai.history"
