"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

#: The shared corpora live next to the repository: <repo>/../shared/data.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared corpus folder; skipped when absent, a failure under CI=true."""
    if not SHARED_DATA.is_dir():
        message = f"shared corpus folder {SHARED_DATA} is absent"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (required under CI=true)")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_file(shared_data: Path) -> Callable[[str], Path]:
    """``shared_file("loghub/Linux/Linux_2k.log")``: a corpus file, with the same skip/fail rule."""

    def get(relative: str) -> Path:
        path = shared_data / relative
        if not path.exists():
            message = f"corpus file {path} is absent"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"{message} (required under CI=true)")
            pytest.skip(message)
        return path

    return get
