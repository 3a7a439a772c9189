"""Pydantic schemas of the JSON stored in database columns.

The HTTP request and response schemas live next to their services (`app.runs.schemas`…); this
package holds the shapes that are also a storage format, so changing one means a data migration.
"""

from app.schemas.agent_config import (
    DEFAULT_DECLARED_OUTPUTS,
    AgentSoulConfig,
    AppVariable,
    ArrayItemConfig,
    DeclaredOutputConfig,
    EnvConfig,
    EnvVariable,
    FailureStrategyConfig,
    FileOutputConfig,
    HumanConfig,
    JobMode,
    KnowledgeConfig,
    KnowledgeQueryMode,
    MemoryConfig,
    ModelConfig,
    OnFailure,
    OutputCheckConfig,
    OutputType,
    PromptConfig,
    RetryConfig,
    SandboxConfig,
    SecretRef,
    SkillsFilesConfig,
    ToolsConfig,
    WorkflowNodeJobConfig,
)
from app.schemas.secret_keys import is_secret_like_key, secret_like_key_paths

__all__ = [
    "DEFAULT_DECLARED_OUTPUTS",
    "AgentSoulConfig",
    "AppVariable",
    "ArrayItemConfig",
    "DeclaredOutputConfig",
    "EnvConfig",
    "EnvVariable",
    "FailureStrategyConfig",
    "FileOutputConfig",
    "HumanConfig",
    "JobMode",
    "KnowledgeConfig",
    "KnowledgeQueryMode",
    "MemoryConfig",
    "ModelConfig",
    "OnFailure",
    "OutputCheckConfig",
    "OutputType",
    "PromptConfig",
    "RetryConfig",
    "SandboxConfig",
    "SecretRef",
    "SkillsFilesConfig",
    "ToolsConfig",
    "WorkflowNodeJobConfig",
    "is_secret_like_key",
    "secret_like_key_paths",
]
