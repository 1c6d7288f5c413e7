"""The import graph runs one way, down the layers of docs/architecture.md.

Every module of the package is parsed (not imported), and every ``import`` in it, at the top or inside a
function or an ``if TYPE_CHECKING:`` block, is checked: a module may import its own layer and the layers
below, never one above. A function-level import is still an arrow: it only delays when the upper module
loads. ``cli.py`` is held to more: it may import only the use cases, the public API, the terminal renderers
and the errors it reports.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import glyphlab

#: lowest first; a module belongs to the layer of the longest name that is it or a package above it
#: ("glyphlab" itself only by that exact name: the package's __init__ re-exports the API)
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        (
            "glyphlab._version",
            "glyphlab.errors",
            "glyphlab.events",
            "glyphlab.extras",
            "glyphlab.fileio",
            "glyphlab.user_errors",
        ),
    ),
    ("data", ("glyphlab.data",)),
    ("models", ("glyphlab.models",)),
    ("runs", ("glyphlab.runfolder",)),
    ("evaluation", ("glyphlab.evaluation",)),
    (
        "services",
        ("glyphlab.console", "glyphlab.reporting", "glyphlab.serving", "glyphlab.tracking", "glyphlab.reading"),
    ),
    ("use cases", ("glyphlab.pipeline", "glyphlab.recipes", "glyphlab.search_spaces")),
    ("api", ("glyphlab.api", "glyphlab")),
    ("cli", ("glyphlab.cli", "glyphlab.cli_options", "glyphlab.render", "glyphlab.__main__")),
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}

#: what cli.py may import besides its own layer: the use cases, the API, and the errors it turns into one line
CLI_MAY_IMPORT = {"use cases", "api"}
CLI_MAY_IMPORT_MODULES = {"glyphlab.console", "glyphlab.errors", "glyphlab.events", "glyphlab.user_errors"}


@dataclass(frozen=True)
class Arrow:
    """One import: who imports what, in which function (``""`` at module level), on which line."""

    source: str
    target: str
    function: str
    line: int


def layer_of(module: str) -> str:
    """The layer a module belongs to; a module no layer claims fails the test (place it in LAYERS and in
    docs/architecture.md)."""
    best, length = None, -1
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            matches = module == prefix or (prefix != "glyphlab" and module.startswith(prefix + "."))
            if matches and len(prefix) > length:
                best, length = name, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS here and to docs/architecture.md")
    return best


def package_modules(root: Path) -> dict[str, Path]:
    """Every module under ``root`` (the ``glyphlab`` folder) by dotted name."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = ("glyphlab", *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


class _Imports(ast.NodeVisitor):
    """The glyphlab imports of one module with the function each sits in."""

    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.module, self.is_package, self.known = module, is_package, known
        self.function: list[str] = []
        self.arrows: list[Arrow] = []

    def _add(self, target: str, line: int) -> None:
        if target == "glyphlab" or target.startswith("glyphlab."):
            self.arrows.append(Arrow(self.module, target, self.function[0] if self.function else "", line))

    def _def(self, node: ast.AST) -> None:
        self.function.append(node.name)  # type: ignore[attr-defined]
        self.generic_visit(node)
        self.function.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _def

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:  # relative: from the module's own package upward
            package = self.module.split(".") if self.is_package else self.module.split(".")[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, *([node.module] if node.module else [])])
        for alias in node.names:  # `from glyphlab.x import y` imports the module glyphlab.x.y when there is one
            full = f"{base}.{alias.name}"
            self._add(full if full in self.known else base, node.lineno)


def arrows_of(module: str, source: str, is_package: bool, known: set[str]) -> list[Arrow]:
    visitor = _Imports(module, is_package, known)
    visitor.visit(ast.parse(source))
    return list(dict.fromkeys(visitor.arrows))  # `from x import a, b` is one arrow


def broken(arrow: Arrow) -> str | None:
    """Why an import breaks the layers, or None when it does not."""
    here, there = layer_of(arrow.source), layer_of(arrow.target)
    if RANK[there] > RANK[here]:
        return f"{arrow.source} ({here}) imports {arrow.target} ({there}), a layer above it"
    if arrow.source == "glyphlab.cli":
        if there not in CLI_MAY_IMPORT and there != here and arrow.target not in CLI_MAY_IMPORT_MODULES:
            return f"glyphlab.cli imports {arrow.target} ({there}): the CLI calls use cases and renders their results"
    return None


def all_arrows() -> list[Arrow]:
    modules = package_modules(Path(glyphlab.__file__).parent)
    known = set(modules)
    return [
        arrow
        for name, path in modules.items()
        for arrow in arrows_of(name, path.read_text(encoding="utf-8"), path.name == "__init__.py", known)
    ]


def test_every_module_is_in_a_layer():
    for name in package_modules(Path(glyphlab.__file__).parent):
        layer_of(name)


def test_no_import_runs_up_a_layer():
    problems = [
        f"{a.source}:{a.line}{' in ' + a.function if a.function else ''}: {why}"
        for a in all_arrows()
        if (why := broken(a))
    ]
    assert not problems, "imports against docs/architecture.md's layers:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "source", "bad"),
    [
        ("glyphlab.models.persistence", "from glyphlab import __version__", True),
        ("glyphlab.models.persistence", "from glyphlab._version import __version__", False),
        ("glyphlab.models.torch.loop", "def f():\n    from glyphlab.runfolder import RunFolder", True),
        ("glyphlab.data.images", "from . import cleanup", False),
        ("glyphlab.data.images", "from ..pipeline import run", True),
        (
            "glyphlab.serving.quantize",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n import glyphlab.pipeline",
            True,
        ),
        ("glyphlab.cli", "from glyphlab.api import run", False),
        ("glyphlab.cli", "def run_cmd():\n    from glyphlab.models.registry import parse_params", True),
        ("glyphlab.cli", "def predict_cmd():\n    from glyphlab.serving.predictor import Predictor", True),
    ],
)
def test_the_check_sees_each_kind_of_import(module, source, bad):
    """The checker itself: module-level, function-level, relative and TYPE_CHECKING imports all count."""
    known = {"glyphlab.data.cleanup", "glyphlab.pipeline.run", "glyphlab.api", "glyphlab._version"}
    arrows = arrows_of(module, source, False, known)
    assert arrows, source
    assert any(broken(a) for a in arrows) is bad
