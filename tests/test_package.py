"""The package's shape: each subpackage lists exactly its modules, and every name has one import path."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "chief_of_staff"
PACKAGES = sorted(path.parent for path in PACKAGE.rglob("__init__.py"))
SOURCES = sorted(path for folder in ("chief_of_staff", "tests", "tools") for path in (ROOT / folder).rglob("*.py"))


def _dotted(folder: Path) -> str:
    return ".".join(folder.relative_to(ROOT).parts)


def _members(folder: Path) -> set[str]:
    """The public modules and subpackages a folder holds."""
    modules = {path.stem for path in folder.glob("*.py") if not path.name.startswith("_")}
    packages = {path.parent.name for path in folder.glob("*/__init__.py")}
    return modules | packages


@pytest.mark.parametrize("folder", PACKAGES, ids=_dotted)
def test_each_package_exports_exactly_its_modules(folder: Path) -> None:
    package = importlib.import_module(_dotted(folder))
    exported = set(package.__all__) - {"__version__"}
    assert exported == _members(folder)
    for name in exported:
        importlib.import_module(f"{package.__name__}.{name}")


def _defined_at_top(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {sub.id for target in targets for sub in ast.walk(target) if isinstance(sub, ast.Name)}
    return names


def _module_file(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_names_are_imported_from_the_module_that_defines_them(source: Path) -> None:
    """No module re-exports: `from chief_of_staff.x import N` needs N defined in x (or x.N a module)."""
    wrong = []
    for node in ast.walk(ast.parse(source.read_text("utf-8"))):
        if not (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and node.module.split(".")[0] == "chief_of_staff"
        ):
            continue
        found = _module_file(node.module)
        assert found is not None, f"{source.name}:{node.lineno}: no module {node.module}"
        defined = _defined_at_top(ast.parse(found.read_text("utf-8")))
        for alias in node.names:
            if alias.name not in defined and _module_file(f"{node.module}.{alias.name}") is None:
                wrong.append(f"{node.lineno}: {alias.name} is not defined in {node.module}")
    assert wrong == []
