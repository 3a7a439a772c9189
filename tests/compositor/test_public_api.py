"""The package's public surface, its import boundary and its error contract."""

import ast
import sys
from pathlib import Path

import pytest

import app.compositor
from app.compositor import (
    CompositorConfigError,
    CompositorError,
    LayerConfigError,
    LayerDefinitionError,
    LayerDepsError,
    LayerLifecycleError,
    LayerLookupError,
    LayerProviderError,
    SnapshotError,
)

PACKAGE_DIR = Path(app.compositor.__file__).parent

DESIGN_NAMES = {
    "Layer",
    "LayerDeps",
    "NoLayerDeps",
    "LayerConfig",
    "EmptyLayerConfig",
    "EmptyRuntimeState",
    "LifecycleState",
    "ExitIntent",
    "LayerProvider",
    "LayerNodeConfig",
    "CompositorConfig",
    "Compositor",
    "CompositorRun",
    "LayerSessionSnapshot",
    "CompositorSessionSnapshot",
    "PlainLayer",
    "CompositorError",
}

ERROR_CLASSES = [
    LayerDefinitionError,
    LayerDepsError,
    CompositorConfigError,
    LayerConfigError,
    SnapshotError,
    LayerProviderError,
    LayerLifecycleError,
    LayerLookupError,
]


def test_all_is_exactly_the_public_surface_of_the_package() -> None:
    public = {name for name in vars(app.compositor) if not name.startswith("_")}

    assert set(app.compositor.__all__) == public
    assert len(app.compositor.__all__) == len(set(app.compositor.__all__))


def test_every_name_in_all_exists_and_the_design_names_are_there() -> None:
    for name in app.compositor.__all__:
        assert hasattr(app.compositor, name), name
    assert set(app.compositor.__all__) >= DESIGN_NAMES
    assert {cls.__name__ for cls in ERROR_CLASSES} <= set(app.compositor.__all__)


def test_the_package_imports_only_the_standard_library_pydantic_and_typing_extensions() -> None:
    allowed = set(sys.stdlib_module_names) | {"pydantic", "typing_extensions"}
    imported: set[str] = set()
    for path in PACKAGE_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])

    assert imported <= allowed, imported - allowed


@pytest.mark.parametrize("error_class", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_class_is_a_compositor_error_with_declared_codes(
    error_class: type[CompositorError],
) -> None:
    code = sorted(error_class.codes)[0]

    error = error_class("layer x is broken", code=code, layer="x")

    assert isinstance(error, CompositorError)
    assert error.codes
    assert (error.code, error.layer, error.message, str(error)) == (
        code,
        "x",
        "layer x is broken",
        "layer x is broken",
    )
    assert repr(error) == f"{error_class.__name__}('layer x is broken', code={code!r}, layer='x')"


def test_an_error_code_outside_the_class_contract_is_refused() -> None:
    with pytest.raises(ValueError, match="does not define the error code 'snapshot_layer_closed'"):
        LayerConfigError("nope", code="snapshot_layer_closed")


def test_errors_also_derive_from_the_matching_builtin_exceptions() -> None:
    assert issubclass(LayerDefinitionError, TypeError)
    assert issubclass(CompositorConfigError, ValueError)
    assert issubclass(LayerConfigError, ValueError)
    assert issubclass(SnapshotError, ValueError)
    assert issubclass(LayerLifecycleError, RuntimeError)
    assert issubclass(LayerLookupError, LookupError)
