"""The import direction of DESIGN.md §2: api -> service <- workers -> l0models."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "l0models": {"service", "workers", "api", "ray", "fastapi", "sqlalchemy", "optuna"},
    "service": {"l0models", "workers", "api", "torch", "torchvision", "ray", "fastapi"},
    "api": {"workers", "l0models", "torch", "torchvision", "ray"},
    "workers": {"api"},
}


def _imported_roots(path: Path) -> set[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((node.lineno, a.name.split(".")[0]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add((node.lineno, node.module.split(".")[0]))
    return found


def _violations(root: Path) -> list[str]:
    bad = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, name in sorted(_imported_roots(path)):
                if name in forbidden:
                    bad.append(f"{path.relative_to(root)}:{line}: {package} imports {name}")
    return bad


def test_import_direction() -> None:
    assert _violations(ROOT) == []


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "bad.py").write_text("import torch\n")
    assert _violations(tmp_path) == ["service/bad.py:1: service imports torch"]
