"""Optional compiled build of the on-chain engine's hot modules.

``pip install .`` installs pure Python. ``CMCSTREAM_COMPILE=1 pip install .``
compiles the modules listed under ``[tool.cmcstream] compiled`` in
pyproject.toml with mypyc into C extensions (a C compiler and the Python
headers are needed; a failed compile fails the install rather than falling
back in silence). Both builds run the same source and stream byte-identical
payloads; ``benchmarks/engine_swaps.py`` measures and checks that.

Everything else about the package is declared in pyproject.toml.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from setuptools import setup

ROOT = Path(__file__).resolve().parent
MYPY = "mypy>=1.11,<3"


def compiled_build() -> dict[str, Any]:
    if os.environ.get("CMCSTREAM_COMPILE", "0") != "1":
        return {}
    try:
        from mypyc.build import mypycify
    except ImportError:
        # The build front end first asks what the build needs; mypy comes with that answer.
        return {"setup_requires": [MYPY]}
    modules = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cmcstream"]["compiled"]
    paths = [f"src/{name.replace('.', '/')}.py" for name in modules]
    # The project's own strict mypy settings are for development; the build only needs
    # the engine's types, and the rest of the package's dependencies need not be present.
    options = ["--config-file=", "--follow-imports=silent", "--ignore-missing-imports"]
    return {"setup_requires": [MYPY], "ext_modules": mypycify([*options, *paths])}


setup(**compiled_build())
