"""The JSON column schemas: unknown fields, secrets and declared outputs are validated."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.schemas import (
    DEFAULT_DECLARED_OUTPUTS,
    AgentSoulConfig,
    ArrayItemConfig,
    DeclaredOutputConfig,
    JobMode,
    OutputType,
    WorkflowNodeJobConfig,
    is_secret_like_key,
)


def _soul(**fields: Any) -> AgentSoulConfig:
    return AgentSoulConfig.model_validate(fields)


def _output(**fields: Any) -> DeclaredOutputConfig:
    return DeclaredOutputConfig.model_validate({"name": "answer", "type": "string", **fields})


# --- AgentSoulConfig ---------------------------------------------------------------------------


def test_a_full_soul_config_round_trips_through_json() -> None:
    config = _soul(
        prompt={"system_prompt": "You research."},
        model={"provider": "local", "model": "qwen3", "settings": {"temperature": 0.2}},
        tools={"platform_tools": [{"name": "search"}], "cli_tools": []},
        knowledge={"datasets": [{"id": "d1"}], "query_mode": "user_query"},
        human={
            "contacts": [{"name": "Ops", "email": "ops@example.com"}],
            "tools": [{"name": "ask"}],
        },
        env={
            "variables": [{"name": "REGION", "value": "eu"}],
            "secret_refs": [{"name": "GITHUB_TOKEN", "secret": "github"}],
        },
        sandbox={"provider": "local", "config": {"image": "python:3.11"}},
        memory={"scope": "agent", "budget": 1000},
        app_variables=[{"name": "topic", "type": "string", "required": True}],
    )
    dumped = config.model_dump(mode="json")
    assert AgentSoulConfig.model_validate(dumped) == config
    assert dumped["schema_version"] == 1


def test_an_empty_soul_config_is_valid_and_has_no_model() -> None:
    config = AgentSoulConfig()
    assert config.model is None
    assert config.prompt.system_prompt == ""


@pytest.mark.parametrize(
    "fields",
    [
        {"unknown": 1},
        {"schema_version": 2},
        {"prompt": {"system_prompt": "x", "user_prompt": "y"}},
        {"model": {"provider": "local", "model": "m", "api_key": "sk-123"}},
        {"model": {"plugin_id": "p", "model_provider": "openai", "model": "m"}},
        {"env": {"variables": [{"name": "A", "value": "1", "secret": True}]}},
        {"knowledge": {"query_mode": "guess"}},
    ],
)
def test_the_soul_config_rejects_unknown_fields_and_values(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _soul(**fields)


@pytest.mark.parametrize(
    "settings",
    [
        {"api_key": "sk-123"},
        {"apiKey": "sk-123"},
        {"OPENAI_API_KEY": "sk-123"},
        {"secret": "x"},
        {"client_secret": "x"},
        {"token": "x"},
        {"access_token": "x"},
        {"password": "x"},
        {"credentials": {"user": "u"}},
        {"extra_headers": {"Authorization": "Bearer x"}},
        {"extra_body": {"options": [{"x-api-key": "x"}]}},
    ],
)
def test_model_settings_refuse_secret_like_keys(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="secret-like"):
        _soul(model={"provider": "local", "model": "m", "settings": settings})


def test_model_settings_allow_ordinary_parameters() -> None:
    settings = {
        "temperature": 0.1,
        "max_tokens": 512,
        "top_p": 0.9,
        "stop": ["\n"],
        "keyword_boost": 1,
        "extra_headers": {"X-Request-Source": "strata"},
    }
    config = _soul(model={"provider": "test", "model": "m", "settings": settings})
    assert config.model is not None
    assert config.model.settings == settings


def test_free_form_objects_elsewhere_refuse_secret_like_keys_but_allow_references() -> None:
    with pytest.raises(ValidationError, match=r"tools.platform_tools.0"):
        _soul(tools={"platform_tools": [{"name": "github", "token": "ghp_x"}]})
    with pytest.raises(ValidationError, match="secret-like"):
        _soul(sandbox={"provider": "remote", "config": {"password": "x"}})
    config = _soul(tools={"platform_tools": [{"name": "github", "token_ref": "github"}]})
    assert config.tools.platform_tools == [{"name": "github", "token_ref": "github"}]


def test_env_secrets_must_be_references() -> None:
    with pytest.raises(ValidationError, match="looks like a secret"):
        _soul(env={"variables": [{"name": "GITHUB_TOKEN", "value": "ghp_x"}]})
    config = _soul(env={"secret_refs": [{"name": "GITHUB_TOKEN", "secret": "github"}]})
    assert config.env.secret_refs[0].secret == "github"


def test_env_names_are_identifiers_and_unique() -> None:
    with pytest.raises(ValidationError):
        _soul(env={"variables": [{"name": "NOT-AN-IDENTIFIER", "value": "x"}]})
    with pytest.raises(ValidationError, match="repeated: REGION"):
        _soul(
            env={
                "variables": [{"name": "REGION", "value": "eu"}],
                "secret_refs": [{"name": "REGION", "secret": "region"}],
            }
        )


@pytest.mark.parametrize(
    ("key", "secret_like"),
    [
        ("api_key", True),
        ("API-KEY", True),
        ("apikey", True),
        ("privateKey", True),
        ("db_password", True),
        ("refresh_token", True),
        ("token_ref", False),
        ("secret_refs", False),
        ("max_tokens", False),
        ("tokenizer", False),
        ("key", False),
        ("keyword", False),
        ("temperature", False),
    ],
)
def test_secret_like_keys_are_recognised_by_whole_words(key: str, secret_like: bool) -> None:
    assert is_secret_like_key(key) is secret_like


# --- WorkflowNodeJobConfig and declared outputs --------------------------------------------------


def test_a_job_config_defaults_to_explicit_instructions_and_default_outputs() -> None:
    config = WorkflowNodeJobConfig()
    assert config.mode is JobMode.TELL_AGENT_WHAT_TO_DO
    assert config.effective_declared_outputs() == DEFAULT_DECLARED_OUTPUTS
    assert [(o.name, o.type, o.required) for o in DEFAULT_DECLARED_OUTPUTS] == [
        ("text", OutputType.STRING, False),
        ("files", OutputType.ARRAY, False),
        ("json", OutputType.OBJECT, False),
    ]
    assert DEFAULT_DECLARED_OUTPUTS[1].array_item == ArrayItemConfig(type=OutputType.FILE)


def test_a_job_config_round_trips_and_rejects_unknown_fields() -> None:
    config = WorkflowNodeJobConfig.model_validate(
        {
            "mode": "let_agent_figure_it_out",
            "workflow_prompt": "Summarise the ticket.",
            "previous_node_output_refs": [{"node_id": "n1", "output": "text"}],
            "declared_outputs": [{"name": "summary", "type": "string"}],
            "human_contacts": [{"name": "Ops", "email": "ops@example.com"}],
            "metadata": {"origin": "editor"},
        }
    )
    assert WorkflowNodeJobConfig.model_validate(config.model_dump(mode="json")) == config
    assert config.effective_declared_outputs() == tuple(config.declared_outputs)
    with pytest.raises(ValidationError):
        WorkflowNodeJobConfig.model_validate({"mode": "tell_agent_what_to_do", "prompt": "x"})


@pytest.mark.parametrize("name", ["1st", "has space", "dash-ed", "", "x" * 65])
def test_declared_output_names_are_identifiers(name: str) -> None:
    with pytest.raises(ValidationError):
        _output(name=name)


def test_declared_output_names_are_unique_within_a_node() -> None:
    with pytest.raises(ValidationError, match="unique"):
        WorkflowNodeJobConfig.model_validate(
            {"declared_outputs": [{"name": "a", "type": "string"}, {"name": "a", "type": "number"}]}
        )


def test_array_outputs_default_to_object_items_and_refuse_nested_arrays() -> None:
    assert _output(type="array").array_item == ArrayItemConfig(type=OutputType.OBJECT)
    with pytest.raises(ValidationError, match="cannot be array"):
        _output(type="array", array_item={"type": "array"})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "string", "array_item": {"type": "string"}}, "only for type array"),
        ({"type": "object", "file": {"extensions": [".pdf"]}}, "only for type file"),
        ({"type": "array", "check": {"enabled": False}}, "only for type file"),
        ({"type": "file", "check": {"enabled": True, "prompt": "compare"}}, "benchmark_file_ref"),
    ],
)
def test_type_specific_settings_only_fit_their_type(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _output(**fields)


def test_a_file_output_takes_file_settings_and_a_complete_check() -> None:
    output = _output(
        type="file",
        file={"extensions": [".pdf"], "mime_types": ["application/pdf"]},
        check={"enabled": True, "prompt": "Same layout?", "benchmark_file_ref": "file-1"},
    )
    assert output.file is not None
    assert output.file.extensions == [".pdf"]


@pytest.mark.parametrize(
    "retry", [{"max_retries": 11}, {"max_retries": -1}, {"retry_interval_ms": 60_001}]
)
def test_retry_settings_are_bounded(retry: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _output(failure_strategy={"retry": {"enabled": True, **retry}})


@pytest.mark.parametrize(
    ("output_type", "default_value", "valid"),
    [
        ("string", "n/a", True),
        ("string", 3, False),
        ("number", 2.5, True),
        ("number", True, False),
        ("boolean", False, True),
        ("boolean", 0, False),
        ("object", {"k": "v"}, True),
        ("object", ["v"], False),
        ("array", [{"k": "v"}], True),
        ("array", ["v"], False),
    ],
)
def test_a_default_value_must_match_the_output_type(
    output_type: str, default_value: Any, valid: bool
) -> None:
    fields = {
        "type": output_type,
        "failure_strategy": {"on_failure": "default_value", "default_value": default_value},
    }
    if valid:
        assert _output(**fields).failure_strategy.default_value == default_value
    else:
        with pytest.raises(ValidationError, match="default_value"):
            _output(**fields)


def test_falling_back_to_a_default_value_needs_one() -> None:
    with pytest.raises(ValidationError, match="needs one"):
        _output(failure_strategy={"on_failure": "default_value"})
    assert _output(failure_strategy={"on_failure": "fail_branch"}).required is True
