"""The house plan's rooms (``../shared/docs/architecture.md``): which of our packages each
package may import. Read from the source with ``ast``, imports inside functions included, so a
lazy import cannot slip a dependency past the plan."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "qorgan"
#: The plan's table; a package always may import itself.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "telemetry": frozenset({"core"}),
    "detection": frozenset({"telemetry", "core"}),
    "incidents": frozenset({"core"}),
    "intel": frozenset({"core"}),
    "privacy": frozenset({"core"}),
    "pipeline": frozenset({"telemetry", "detection", "incidents", "core"}),
}


def _is_module(name: str) -> bool:
    """A package or module of ours (``qorgan.__version__`` is the root's attribute)."""
    return (SRC / name).is_dir() or (SRC / f"{name}.py").is_file()


def _imports(path: Path) -> set[str]:
    """The first component under ``qorgan`` of every module ``path`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "qorgan":  # from qorgan import incidents
                names = [f"qorgan.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "qorgan" and len(parts) > 1 and _is_module(parts[1]):
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_each_package_imports_only_what_the_plan_allows(package: str) -> None:
    allowed = MAY_IMPORT[package] | {package}
    wrong = {
        f"{path.relative_to(SRC)}: {', '.join(sorted(bad))}"
        for path in sorted((SRC / package).rglob("*.py"))
        if (bad := _imports(path) - allowed)
    }
    assert not wrong, sorted(wrong)


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from qorgan.web import app\n    import qorgan.intel.store\n")
    assert _imports(module) == {"web", "intel"}
