"""The layering rules of docs/architecture.md, checked on the source (an import contract).

* ``core/`` imports no TensorFlow (not even its protos), no grpc and no HTTP server.
* Only ``runtime/`` imports TensorFlow's Python API (``tensorflow`` itself or
  ``tensorflow.python``); proto modules (``tensorflow.core.*``, ``tensorflow_serving.*``)
  are the wire types and may be used anywhere but ``core/``.
* Nothing below ``protocols/`` imports grpc, uvicorn or the HTTP status table; the two
  composition roots (``server.py`` and the child-process entry ``processes/child.py``) may.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "tensorserve"


def imports(path: Path) -> Iterator[str]:
    """Every module name ``path`` imports (absolute, including function-level imports)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py")) if folder else sorted(PACKAGE.rglob("*.py"))


def tf_python_api(name: str) -> bool:
    return name == "tensorflow" or name.startswith("tensorflow.python")


@pytest.mark.parametrize("path", modules("core"), ids=lambda p: p.name)
def test_core_is_framework_free(path: Path) -> None:
    banned = ("tensorflow", "tensorflow_serving", "grpc", "uvicorn", "starlette", "numpy")
    found = [m for m in imports(path) if m.split(".")[0] in banned]
    assert found == [], f"{path.relative_to(PACKAGE)} imports {found}"


@pytest.mark.parametrize("path", modules(""), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_runtime_imports_tensorflow(path: Path) -> None:
    if path.relative_to(PACKAGE).parts[0] == "runtime":
        return
    found = [m for m in imports(path) if tf_python_api(m)]
    assert found == [], f"{path.relative_to(PACKAGE)} imports TensorFlow's API: {found}"


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in modules("")
        if p.relative_to(PACKAGE).parts[0] not in ("protocols", "server.py")
        and p.relative_to(PACKAGE) != Path("processes/child.py")
    ],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_protocol_types_below_the_protocols(path: Path) -> None:
    banned = ("grpc", "grpc_health", "uvicorn", "starlette", "tensorserve.protocols")
    found = [m for m in imports(path) if m == "grpc" or m.startswith(banned)]
    assert found == [], f"{path.relative_to(PACKAGE)} imports {found}"
