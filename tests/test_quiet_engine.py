"""The engine never prints: no module under pipeline/, models/, evaluation/, data/ or recipes/ imports Rich.

What a step shows is decided by the observers of its events (glyphlab.events): the CLI attaches the Rich console,
a notebook a progress observer, a script none. Read from the source files' syntax trees, so an import inside a
function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import glyphlab

ENGINE = ("pipeline", "models", "evaluation", "data", "recipes")
ROOT = Path(glyphlab.__file__).parent


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_engine_module_imports_rich():
    files = [f for package in ENGINE for f in sorted((ROOT / package).rglob("*.py"))]
    assert len(files) > 20  # the walk found the engine
    offenders = {
        str(f.relative_to(ROOT)): sorted(m for m in imported_modules(f) if m == "rich" or m.startswith("rich."))
        for f in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from rich.table import Table\n    import rich\n")
    assert imported_modules(probe) == {"rich.table", "rich"}
