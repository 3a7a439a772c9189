"""Schemas of the agent configuration JSON columns.

- `AgentSoulConfig` is what an agent *is*: its prompt, model, tools, knowledge, human contacts,
  environment, sandbox and memory. One dump per `agent_config_snapshots.config` row.
- `WorkflowNodeJobConfig` is what a workflow node *asks* of an agent: how much freedom it gets
  (`mode`), the node's prompt, which earlier outputs it sees, and the outputs it must declare.
  One dump per `workflow_agent_node_bindings.node_job_config` row.

Invariants:

- Unknown fields are rejected everywhere (`extra="forbid"`), so a typo never silently disappears.
- No secrets: `model.provider` names a provider configured on the server, environment secrets are
  `env.secret_refs`, and every free-form object (`FreeFormObject`) is refused when it holds a
  secret-like key (`app.schemas.secret_keys`).
- Declared outputs have identifier names, unique within a node; type-specific settings (`file`,
  `check`, `array_item`) only appear on outputs of that type; a default value matches the type.
- `schema_version` is 1; a later shape gets a new literal and a migration of the stored rows.

Item shapes that Strata does not interpret yet (tool entries, knowledge datasets…) are free-form
objects, kept as given. Human contacts are typed (`HumanContact`); rows saved while they were
free-form are read back through `load_soul_config`/`load_job_config`, which fit them into it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from app.schemas.secret_keys import is_secret_like_key, reject_secret_like_keys
from app.schemas.strict import SchemaVersion1, StrictBool, StrictInt

FreeFormObject = Annotated[dict[str, Any], AfterValidator(reject_secret_like_keys)]
"""A JSON object Strata keeps as given, except that it may not hold a secret-like key."""

STORED = {"stored": True}
"""Validation context of configs read back from the database (`load_soul_config`,
`load_job_config`): shapes that a later schema made stricter are read as they were saved (see
`HumanContact`), where a request would be refused."""

IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""Names that are usable as variables downstream: a letter or `_`, then letters, digits, `_`."""

Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN, max_length=64)]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --- AgentSoulConfig ---------------------------------------------------------------------------


class PromptConfig(_Schema):
    """The agent's own instructions, placed before any job a workflow gives it."""

    system_prompt: str = ""


class ModelConfig(_Schema):
    """Which model the agent uses. `provider` names a provider configured on the server.

    The provider's URL and key live in server configuration; `settings` holds only model
    parameters (temperature, max_tokens…) and is refused when it holds a secret-like key.
    """

    provider: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=255)
    settings: FreeFormObject | None = None


class SkillsFilesConfig(_Schema):
    """Files and skills made available to the agent."""

    files: list[FreeFormObject] = Field(default_factory=list)
    skills: list[FreeFormObject] = Field(default_factory=list)


class ToolsConfig(_Schema):
    """Tools the agent may call: ones the calling platform provides, and command-line tools."""

    platform_tools: list[FreeFormObject] = Field(default_factory=list)
    cli_tools: list[FreeFormObject] = Field(default_factory=list)


class KnowledgeQueryMode(StrEnum):
    """How a knowledge query is formed."""

    USER_QUERY = "user_query"  # the user's input is the query
    GENERATED_QUERY = "generated_query"  # the agent writes the query


class KnowledgeConfig(_Schema):
    """Knowledge bases the agent retrieves from."""

    datasets: list[FreeFormObject] = Field(default_factory=list)
    query_mode: KnowledgeQueryMode | None = None
    query_config: FreeFormObject = Field(default_factory=dict)


_CONTACT_EXAMPLE: dict[str, Any] = {
    "name": "On-call reviewer",
    "id": "group-7f3a",
    "email": "review@example.com",
    "description": "Approves refunds above 500 EUR; answers within the hour.",
    "metadata": {"channel": "slack", "team": "payments"},
}


class HumanContact(_Schema):
    """Someone the agent may ask (human-in-the-loop): a person, a team or a role.

    Strata does not contact anyone itself. A node run whose agent or job lists contacts gets the
    `ask_human` layer, so the model can ask; the run then pauses with the question, and the
    workflow engine routes it to a contact and resumes the run with the answer. The fields are
    for that engine (and for people reading the config): Strata checks their shape, keeps them
    as given, and puts none of them in a prompt.

    Contacts saved before this schema existed (any JSON object) are read back in this shape:
    the fields that fit are kept, every other key goes under `metadata`, and a contact without
    a usable `name` is named after its `email` or `id` (else `unnamed contact`).
    """

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, json_schema_extra={"examples": [_CONTACT_EXAMPLE]}
    )

    name: str = Field(
        min_length=1, max_length=255, description="Who this is, as people would call them."
    )
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="The calling platform's id of the person or group (an account or team id).",
    )
    email: str | None = Field(
        default=None,
        max_length=320,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="Where the calling platform may reach them by email.",
    )
    description: str | None = Field(
        default=None,
        max_length=2000,
        description="When to ask them and what they can answer.",
    )
    metadata: FreeFormObject = Field(
        default_factory=dict,
        description="Anything else the calling platform keeps with the contact (no secret-like "
        "keys).",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _saved_before_the_schema(
        cls, value: Any, handler: ModelWrapValidatorHandler[Self], info: ValidationInfo
    ) -> Self:
        if not (info.context or {}).get("stored") or not isinstance(value, dict):
            return handler(value)
        try:
            return handler(value)
        except ValidationError:
            return handler(_legacy_contact(value))


_CONTACT_TEXT_FIELDS = ("name", "id", "email", "description")


def _legacy_contact(value: dict[str, Any]) -> dict[str, Any]:
    """A stored contact from before `HumanContact`, in its shape (see its docstring).

    Keys are moved under `metadata` one failing field at a time, so what fits stays where it
    is; at most one pass per field.
    """
    legacy_metadata = value.get("metadata")
    extra: dict[str, Any] = dict(legacy_metadata) if isinstance(legacy_metadata, dict) else {}
    contact: dict[str, Any] = {}
    for key, item in value.items():
        if key == "metadata" and isinstance(item, dict):
            continue
        if key in _CONTACT_TEXT_FIELDS and isinstance(item, str):
            contact[key] = item
        else:
            extra[key] = item
    for _ in range(len(_CONTACT_TEXT_FIELDS) + 1):
        if not isinstance(contact.get("name"), str) or not contact["name"]:
            contact["name"] = contact.get("email") or contact.get("id") or "unnamed contact"
        try:
            HumanContact.model_validate({**contact, "metadata": extra})
        except ValidationError as error:
            failing = {str(item["loc"][0]) for item in error.errors() if item["loc"]}
            for key in failing & set(contact):
                extra.setdefault(key, contact.pop(key))
            continue
        break
    return {**contact, "metadata": extra}


class HumanConfig(_Schema):
    """People the agent may ask (human-in-the-loop) and the tools it asks them with."""

    contacts: list[HumanContact] = Field(
        default_factory=list,
        description="Who the agent may ask; any contact gives its node runs the `ask_human` layer.",
    )
    tools: list[FreeFormObject] = Field(default_factory=list)


class EnvVariable(_Schema):
    """A plain (non-secret) environment variable; a secret-like name must be a `SecretRef`."""

    name: Identifier
    value: str

    @model_validator(mode="after")
    def _not_a_secret(self) -> Self:
        if is_secret_like_key(self.name):
            raise ValueError(
                f"env variable {self.name!r} looks like a secret; declare it in "
                "env.secret_refs so its value comes from the server's configuration"
            )
        return self


class SecretRef(_Schema):
    """An environment variable whose value is the server-configured secret named `secret`."""

    name: Identifier
    secret: str = Field(min_length=1, max_length=255)


class EnvConfig(_Schema):
    """The agent's environment: plain variables and references to server-side secrets."""

    variables: list[EnvVariable] = Field(default_factory=list)
    secret_refs: list[SecretRef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [item.name for item in self.variables] + [item.name for item in self.secret_refs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"env names must be unique; repeated: {', '.join(duplicates)}")
        return self


class SandboxConfig(_Schema):
    """Where the agent's commands run, when it has any."""

    provider: str | None = None
    config: FreeFormObject = Field(default_factory=dict)


class MemoryConfig(_Schema):
    """What the agent remembers beyond one session."""

    scope: str | None = None
    budget: StrictInt | None = Field(default=None, ge=0)
    artifacts: list[FreeFormObject] = Field(default_factory=list)


class AppVariable(_Schema):
    """An input variable the agent expects from its caller."""

    name: Identifier
    type: str = Field(min_length=1, max_length=32)
    required: StrictBool = False
    default: Any = None


class AgentSoulConfig(_Schema):
    """Everything that defines an agent, independent of any workflow it is used in."""

    schema_version: SchemaVersion1 = 1
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    model: ModelConfig | None = None
    skills_files: SkillsFilesConfig = Field(default_factory=SkillsFilesConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    knowledge: KnowledgeConfig = Field(default_factory=KnowledgeConfig)
    human: HumanConfig = Field(default_factory=HumanConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    app_features: FreeFormObject = Field(default_factory=dict)
    app_variables: list[AppVariable] = Field(default_factory=list)


def load_soul_config(stored: Any) -> AgentSoulConfig:
    """An `AgentSoulConfig` from a stored row (`agent_config_snapshots.config`)."""
    return AgentSoulConfig.model_validate(stored, context=STORED)


# --- WorkflowNodeJobConfig ---------------------------------------------------------------------


class JobMode(StrEnum):
    """How much a workflow node spells out for the agent."""

    LET_AGENT_FIGURE_IT_OUT = "let_agent_figure_it_out"  # a goal; the agent plans the steps
    TELL_AGENT_WHAT_TO_DO = "tell_agent_what_to_do"  # explicit instructions to follow


class OutputType(StrEnum):
    """Type of a declared output value."""

    STRING = "string"
    NUMBER = "number"
    OBJECT = "object"
    ARRAY = "array"
    BOOLEAN = "boolean"
    FILE = "file"


class OnFailure(StrEnum):
    """What the node does when the output cannot be produced (after any retries)."""

    STOP = "stop"  # fail the node
    DEFAULT_VALUE = "default_value"  # use `failure_strategy.default_value`
    FAIL_BRANCH = "fail_branch"  # continue on the workflow's failure branch


class FileOutputConfig(_Schema):
    """Which files a `file` output accepts; empty lists accept any."""

    extensions: list[str] = Field(default_factory=list)
    mime_types: list[str] = Field(default_factory=list)


class ArrayItemConfig(_Schema):
    """Type of the elements of an `array` output (arrays of arrays are not supported)."""

    type: OutputType = OutputType.OBJECT
    description: str | None = None

    @model_validator(mode="after")
    def _not_nested(self) -> Self:
        if self.type is OutputType.ARRAY:
            raise ValueError("array_item.type cannot be array")
        return self


class OutputCheckConfig(_Schema):
    """An extra model check of a produced `file` against a benchmark file."""

    enabled: StrictBool = False
    prompt: str | None = None
    benchmark_file_ref: str | None = None
    model_ref: str | None = None

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> Self:
        if self.enabled and not (self.prompt and self.benchmark_file_ref):
            raise ValueError("an enabled check needs both prompt and benchmark_file_ref")
        return self


class RetryConfig(_Schema):
    """Retries of an output that could not be produced."""

    enabled: StrictBool = False
    max_retries: StrictInt = Field(default=0, ge=0, le=10)
    retry_interval_ms: StrictInt = Field(default=0, ge=0, le=60_000)


class FailureStrategyConfig(_Schema):
    """What happens when an output cannot be produced."""

    retry: RetryConfig = Field(default_factory=RetryConfig)
    on_failure: OnFailure = OnFailure.STOP
    default_value: Any = None


_PYTHON_TYPES: dict[OutputType, type | tuple[type, ...]] = {
    OutputType.STRING: str,
    OutputType.NUMBER: (int, float),
    OutputType.OBJECT: dict,
    OutputType.ARRAY: list,
    OutputType.BOOLEAN: bool,
    OutputType.FILE: dict,  # a file reference object
}


def _matches(output_type: OutputType, value: Any) -> bool:
    if isinstance(value, bool) and output_type is not OutputType.BOOLEAN:
        return False  # bool is an int in Python, but not a number in JSON
    return isinstance(value, _PYTHON_TYPES[output_type])


class DeclaredOutputConfig(_Schema):
    """One output a workflow node expects from the agent."""

    id: str | None = None
    name: Identifier
    type: OutputType
    description: str | None = None
    required: StrictBool = True
    file: FileOutputConfig | None = None
    array_item: ArrayItemConfig | None = None
    check: OutputCheckConfig | None = None
    failure_strategy: FailureStrategyConfig = Field(default_factory=FailureStrategyConfig)

    @model_validator(mode="after")
    def _consistent_with_type(self) -> Self:
        if self.type is not OutputType.FILE and (self.file is not None or self.check is not None):
            raise ValueError(f"output {self.name!r}: file and check are only for type file")
        if self.type is OutputType.ARRAY:
            if self.array_item is None:
                self.array_item = ArrayItemConfig()
        elif self.array_item is not None:
            raise ValueError(f"output {self.name!r}: array_item is only for type array")
        self._check_default_value()
        return self

    def _check_default_value(self) -> None:
        strategy = self.failure_strategy
        value = strategy.default_value
        if value is None:
            if strategy.on_failure is OnFailure.DEFAULT_VALUE:
                raise ValueError(f"output {self.name!r}: on_failure=default_value needs one")
            return
        if not _matches(self.type, value):
            raise ValueError(f"output {self.name!r}: default_value is not a {self.type.value}")
        if self.type is OutputType.ARRAY and self.array_item is not None:
            item_type = self.array_item.type
            if not all(_matches(item_type, item) for item in value):
                raise ValueError(
                    f"output {self.name!r}: default_value items must be {item_type.value}"
                )


DEFAULT_DECLARED_OUTPUTS: tuple[DeclaredOutputConfig, ...] = (
    DeclaredOutputConfig(name="text", type=OutputType.STRING, required=False),
    DeclaredOutputConfig(
        name="files",
        type=OutputType.ARRAY,
        array_item=ArrayItemConfig(type=OutputType.FILE),
        required=False,
    ),
    DeclaredOutputConfig(name="json", type=OutputType.OBJECT, required=False),
)
"""The outputs a node has when it declares none: `text`, `files` and `json`, all optional."""


class WorkflowNodeJobConfig(_Schema):
    """The job a workflow node gives its agent."""

    schema_version: SchemaVersion1 = 1
    mode: JobMode = JobMode.TELL_AGENT_WHAT_TO_DO
    workflow_prompt: str = ""
    previous_node_output_refs: list[FreeFormObject] = Field(default_factory=list)
    declared_outputs: list[DeclaredOutputConfig] = Field(default_factory=list)
    human_contacts: list[HumanContact] = Field(
        default_factory=list,
        description="Who the agent may ask in this node, besides the agent's own contacts; any "
        "contact gives the node's runs the `ask_human` layer.",
    )
    metadata: FreeFormObject = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_output_names(self) -> Self:
        names = [output.name for output in self.declared_outputs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"declared output names must be unique; repeated: {duplicates}")
        return self

    def effective_declared_outputs(self) -> tuple[DeclaredOutputConfig, ...]:
        """The declared outputs, or `DEFAULT_DECLARED_OUTPUTS` when the node declares none."""
        return tuple(self.declared_outputs) or DEFAULT_DECLARED_OUTPUTS


def load_job_config(stored: Any) -> WorkflowNodeJobConfig:
    """A `WorkflowNodeJobConfig` from a stored row (`workflow_agent_node_bindings`)."""
    return WorkflowNodeJobConfig.model_validate(stored, context=STORED)
