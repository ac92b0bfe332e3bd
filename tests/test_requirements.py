"""The production pins (requirements/production.txt) cover every runtime dependency that
pyproject.toml declares, each pinned to one version that satisfies the declaration, with
hashes, so `pip install --require-hashes` installs exactly what was reviewed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, tuple[Version, int]]:
    text = (ROOT / "requirements" / "production.txt").read_text(encoding="utf-8")
    pins: dict[str, tuple[Version, int]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = re.match(r"([A-Za-z0-9_.\-]+)==([^\s\\;]+)", block)
        if head:
            hashes = len(re.findall(r"--hash=sha256:[0-9a-f]{64}", block))
            pins[canonicalize_name(head.group(1))] = (Version(head.group(2)), hashes)
    return pins


def test_every_runtime_dependency_is_pinned_with_hashes() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = _pins()
    assert len(pins) > 20
    for line in declared["project"]["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned: run make requirements"
        version, hashes = pins[name]
        assert version in requirement.specifier, f"{name}=={version} does not satisfy {line}"
        assert hashes >= 1, f"{name} has no hash"
    unhashed = [name for name, (_, hashes) in pins.items() if hashes == 0]
    assert unhashed == []
