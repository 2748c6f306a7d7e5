"""The mypyc build of the on-chain engine behaves as the Python source does.

``CMCSTREAM_COMPILE=1 pip install .`` compiles the engine's hot modules. Here
the same modules are compiled into a copy of the package (the benchmark's
build). The engine's tests and the on-chain server tests then run against that
copy, and the engine benchmark replays one seeded storm through both builds
and must find the same bytes pushed. Timings are printed by the benchmark,
never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import compiled_engine  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tree() -> Path:
    return compiled_engine.build()


def in_tree(tree: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_listed_modules_are_extensions(tree: Path) -> None:
    probe = (
        "import importlib, json, sys\n"
        "from cmcstream.engine import build\n"
        "files = {m: importlib.import_module(m).__file__ for m in sys.argv[1:]}\n"
        "print(json.dumps([build(), files]))\n"
    )
    modules = compiled_engine.compiled_modules()
    done = in_tree(tree, "-c", probe, *modules, timeout=60)
    assert done.returncode == 0, done.stderr
    build, files = json.loads(done.stdout)
    assert build == "compiled"
    assert set(files) == set(modules)
    for name, path in files.items():
        assert Path(path).is_relative_to(tree), (name, path)
        assert not path.endswith(".py"), (name, path)


def test_the_engine_tests_pass_on_the_compiled_build(tree: Path) -> None:
    # The engine's own tests, and the server streaming every on-chain channel from it.
    done = in_tree(
        tree,
        "-m",
        "pytest",
        "tests/engine",
        "tests/server/test_onchain_stream.py",
        "-p",
        "no:cacheprovider",
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "on-chain engine: compiled" in done.stdout
    assert " passed" in done.stdout


def test_both_builds_push_the_same_bytes(tree: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/engine_swaps.py",
            "--engine",
            "both",
            "--runs",
            "1",
            "--swaps",
            "20000",
            "--out-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (out,) = tmp_path.glob("engine-swaps-*.json")
    result = json.loads(out.read_text())
    assert result["identical_output"] is True
    assert len(result["sha256"]) == 1
    assert set(result["engines"]) == {"interpreted", "compiled"}
    assert result["swaps"] >= 20_000
    assert result["pushes"] > 0
    for engine in result["engines"].values():
        assert engine["runs"][0]["swaps_per_second"] > 0
