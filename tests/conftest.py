"""Shared fixtures."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

_SPEC = Path(os.environ.get("CMCSTREAM_SPEC_DIR", Path(__file__).parents[2] / "shared" / "spec"))


def pytest_report_header() -> str:
    from cmcstream.engine import build

    return f"on-chain engine: {build()}"


def spec_dir() -> Path:
    """The protocol spec folder; CI always has it beside the checkout."""
    if not (_SPEC / "channels.json").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"protocol spec not found at {_SPEC}")
        pytest.skip(f"protocol spec not found at {_SPEC} (set CMCSTREAM_SPEC_DIR)")
    return _SPEC


def load_example(name: str) -> Any:
    return json.loads((spec_dir() / "examples" / name).read_text())


@pytest.fixture
def channels_json() -> Any:
    return json.loads((spec_dir() / "channels.json").read_text())
