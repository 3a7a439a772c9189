"""`plain.prompt`: fixed system prompt fragments and user prompt fragments."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, field_validator

from app.compositor import LayerConfig, NoLayerDeps
from app.layers.base import AgentLayer


def _as_list(value: object) -> object:
    if isinstance(value, str):
        return [value]
    return value


class PromptConfig(LayerConfig):
    """Each field is a string or a list of strings; empty strings are dropped."""

    prefix: list[str] = Field(default_factory=list, description="System prompt, placed early.")
    user: list[str] = Field(default_factory=list, description="User prompt fragments.")
    suffix: list[str] = Field(default_factory=list, description="System prompt, placed late.")

    @field_validator("prefix", "user", "suffix", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return _as_list(value)


class PromptLayer(AgentLayer[NoLayerDeps, PromptConfig]):
    type_id = "plain.prompt"

    @property
    def prefix_prompts(self) -> Sequence[str]:
        return [text for text in self.config.prefix if text.strip()]

    @property
    def suffix_prompts(self) -> Sequence[str]:
        return [text for text in self.config.suffix if text.strip()]

    @property
    def user_prompts(self) -> Sequence[str]:
        return [text for text in self.config.user if text.strip()]
