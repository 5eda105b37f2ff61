"""The house's rules, checked in CI as in `make lint`: layers point down, folders are families, wire
names live in subjects/."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = ("receipts", "actors", "scheduler", "foundation", "subjects")
WIRE_NAME = re.compile(r"^(Tracks-[A-Z][A-Za-z-]+|tracksapi(\..*)?)$")


def test_the_import_contract_holds() -> None:
    """import-linter: tracks > receipts > actors | scheduler > foundation > subjects (pyproject.toml)."""
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_no_library_imports_the_app_shell_or_an_embedded_server() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for package in LIBRARIES
        for path in (ROOT / package).rglob("*.py")
        for line, module in _imports(path)
        if module.split(".")[0] == "tracks" or "embedded" in module.split(".")
    ]
    assert not bad, bad


def test_subjects_imports_no_other_package_of_the_project() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in (ROOT / "subjects").rglob("*.py")
        for line, module in _imports(path)
        if module.split(".")[0] in ("tracks", "actors", "scheduler", "foundation")
    ]
    assert not bad, bad


def test_no_folder_holds_more_than_16_modules() -> None:
    crowded = {
        folder.relative_to(ROOT).as_posix(): count
        for package in (*LIBRARIES, "tracks", "tests")  # tests mirror the folders: the same rule
        for folder in [ROOT / package, *(p for p in (ROOT / package).rglob("*") if p.is_dir())]
        if (count := len([p for p in folder.glob("*.py") if p.name != "__init__.py"])) > 16
    }
    assert not crowded, crowded


def test_wire_names_are_defined_only_in_subjects() -> None:
    strays = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
        for package in ("actors", "scheduler", "foundation", "tracks")
        for path in (ROOT / package).rglob("*.py")
        if not path.relative_to(ROOT).as_posix().startswith("tracks/cli/")
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and WIRE_NAME.match(node.value)
    ]
    assert not strays, strays
