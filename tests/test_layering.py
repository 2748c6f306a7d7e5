"""The sans-I/O layers stay sans-I/O: protocol/ and engine/ import no I/O and no upper layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cmcstream

ROOT = Path(cmcstream.__file__).parent
FORBIDDEN = (
    "asyncio",
    "websockets",
    "redis",
    "socket",
    "sqlite3",
    "cmcstream.server",
    "cmcstream.bus",
    "cmcstream.sources",
    "cmcstream.client",
    "cmcstream.cli",
)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("layer", ["protocol", "engine"])
def test_core_layers_import_no_io(layer: str) -> None:
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files
    for path in files:
        for name in imports(path):
            assert not any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN), (
                f"{path.relative_to(ROOT)} imports {name}"
            )


def test_the_client_needs_nothing_of_the_server() -> None:
    # `pip install cmcstream` users streaming from CoinMarketCap never load the
    # server, the simulators or the engine.
    server_side = ("cmcstream.server", "cmcstream.bus", "cmcstream.sources", "cmcstream.engine")
    files = [*sorted((ROOT / "client").rglob("*.py")), ROOT / "exceptions.py"]
    assert len(files) > 5
    for path in files:
        for name in imports(path):
            assert not any(name == bad or name.startswith(bad + ".") for bad in server_side), (
                f"{path.relative_to(ROOT)} imports {name}"
            )
