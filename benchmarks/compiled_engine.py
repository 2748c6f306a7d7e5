"""A compiled copy of the package beside the source, for comparing the two engine builds.

``CMCSTREAM_COMPILE=1 pip install .`` compiles the modules listed under
``[tool.cmcstream] compiled`` in pyproject.toml (see setup.py). This module
does the same into a cache folder: a copy of ``src/cmcstream`` whose listed
modules are mypyc extensions, so a benchmark or a test can run one process on
the source and another on the compiled build (``PYTHONPATH=<tree>``), in the
same run. A tree is reused while the sources, mypy and Python stay the same.

    python benchmarks/compiled_engine.py      # builds, prints the tree's path
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src"
CACHE = ROOT / "benchmarks" / ".build"

# The same mypy options as setup.py's build.
MYPYC_OPTIONS = ("--config-file=", "--follow-imports=silent", "--ignore-missing-imports")


def compiled_modules() -> list[str]:
    """The dotted names setup.py compiles."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    modules: list[str] = config["tool"]["cmcstream"]["compiled"]
    return modules


def _fingerprint() -> str:
    import mypy.version

    digest = hashlib.sha256()
    digest.update(f"{sys.version}|{mypy.version.__version__}|{MYPYC_OPTIONS}".encode())
    for path in sorted((SOURCE / "cmcstream").rglob("*.py")):
        digest.update(str(path.relative_to(SOURCE)).encode())
        digest.update(path.read_bytes())
    digest.update(" ".join(compiled_modules()).encode())
    return digest.hexdigest()[:16]


def build(cache: Path = CACHE) -> Path:
    """A folder to put first on ``PYTHONPATH`` for the compiled build; built if missing.

    Raises:
        RuntimeError: mypyc failed (its output is in the message).
    """
    tree = cache / _fingerprint()
    if (tree / "BUILT").exists():
        return tree
    staging = cache / f"{tree.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(
        SOURCE / "cmcstream", staging / "cmcstream", ignore=shutil.ignore_patterns("__pycache__")
    )
    paths = [f"{name.replace('.', '/')}.py" for name in compiled_modules()]
    done = subprocess.run(
        [sys.executable, "-m", "mypyc", *MYPYC_OPTIONS, *paths],
        cwd=staging,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"mypyc failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    shutil.rmtree(staging / "build", ignore_errors=True)
    (staging / "BUILT").write_text(" ".join(compiled_modules()) + "\n")
    shutil.rmtree(tree, ignore_errors=True)
    staging.rename(tree)
    return tree


if __name__ == "__main__":
    print(build())
