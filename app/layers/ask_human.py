"""`ask_human`: a deferred tool. Calling it ends the run `paused` with the call.

The caller collects the answer and starts a new run with the paused run's snapshot, the same
composition (a `history` layer is required, it holds the pending call) and
`deferred_tool_results.calls[tool_call_id] = answer`; the model then continues.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field
from pydantic_ai import CallDeferred, Tool

from app.compositor import LayerConfig, NoLayerDeps
from app.layers.base import AgentLayer


class AskHumanConfig(LayerConfig):
    tool_name: str = Field(
        default="ask_human", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", description="Tool name."
    )
    tool_description: str = Field(
        default=(
            "Ask a human for information or a decision you cannot get otherwise. The run "
            "pauses until the human answers; the answer is this tool's result."
        ),
        max_length=2000,
    )
    max_question_chars: int = Field(default=1000, ge=1, le=4000)


class AskHumanLayer(AgentLayer[NoLayerDeps, AskHumanConfig]):
    type_id = "ask_human"

    @property
    def tools(self) -> Sequence[Tool[Any]]:
        limit = self.config.max_question_chars

        async def ask_human(question: str, title: str | None = None) -> str:
            if len(question) > limit:
                from pydantic_ai import ModelRetry

                raise ModelRetry(f"the question must be at most {limit} characters")
            raise CallDeferred(metadata={"layer_type": self.type_id, "title": title})

        return [
            Tool(
                ask_human,
                name=self.config.tool_name,
                description=self.config.tool_description,
            )
        ]
