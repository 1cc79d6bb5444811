"""Imports point down only: hfaid -> apps -> curation -> hfaid_core -> db (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Which of the project's packages each package may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "db": set(),
    "hfaid_core": {"db"},
    "curation": {"hfaid_core", "db"},
    "captioning": {"curation", "hfaid_core", "db"},
    "training": {"curation", "hfaid_core", "db"},
    "review_app": {"curation", "hfaid_core", "db"},
    "hfaid": {"review_app", "training", "captioning", "curation", "hfaid_core", "db"},
}
# Inside curation/, which other stage subpackages each may import.
CURATION_ALLOWED: dict[str, set[str]] = {
    "ingest": set(),
    "stage1": set(),
    "scoring": set(),
    "selection": set(),
    "degrade": set(),
    "demo": set(),
    "export": {"degrade", "ingest"},
    "report": {"selection", "evaluate"},
    "evaluate": {"degrade", "scoring", "ingest", "demo"},
    "plan": set(),
}


def imported_modules(path: Path, module: str) -> set[str]:
    """Every absolute module name a file imports, lazy imports inside functions included."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                parts = module.split(".")
                base = parts[: len(parts) - node.level + (1 if is_package else 0)]
                names.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.add(node.module)
    return names


def violations(root: Path) -> list[str]:
    """`file: imports X` for each import that points up or sideways against the tables."""
    found = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            module = ".".join(rel.with_suffix("").parts)
            for name in sorted(imported_modules(path, module)):
                top = name.split(".")[0]
                if top in ALLOWED and top != package and top not in allowed:
                    found.append(f"{rel}: imports {name}")
                if package == "curation" and top == "curation" and len(rel.parts) > 2:
                    own = rel.parts[1]
                    other = name.split(".")[1] if name.count(".") else None
                    if other and other != own and other not in CURATION_ALLOWED.get(own, set()):
                        found.append(f"{rel}: imports {name}")
    return found


def test_imports_point_down_only():
    assert violations(ROOT) == []


def test_every_curation_subpackage_declares_its_imports():
    subpackages = {p.parent.name for p in (ROOT / "curation").glob("*/__init__.py")}
    assert subpackages == set(CURATION_ALLOWED), "add the new stage to CURATION_ALLOWED"
    for name in subpackages:
        doc = ast.get_docstring(ast.parse((ROOT / "curation" / name / "__init__.py").read_text()))
        assert doc and "May import" in doc, f"curation/{name}/__init__.py: say what it may import"


@pytest.mark.parametrize(
    ("file", "source", "imported"),
    [
        ("curation/stage1/x.py", "from hfaid.output import stdout\n", "hfaid.output"),
        ("db/x.py", "def f():\n    import curation.stage1.clean\n", "curation.stage1.clean"),
        ("hfaid_core/x.py", "from review_app import context\n", "review_app"),
        ("curation/ingest/x.py", "from curation.scoring.job import run\n", "curation.scoring.job"),
        ("curation/scoring/x.py", "from ..selection import select\n", "curation.selection"),
    ],
)
def test_an_upward_import_is_caught(tmp_path: Path, file: str, source: str, imported: str):
    for package in ALLOWED:
        (tmp_path / package).mkdir()
    target = tmp_path / file
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source)
    assert violations(tmp_path) == [f"{file}: imports {imported}"]
