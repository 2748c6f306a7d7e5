"""The sans-I/O layers stay sans-I/O: protocol/ and engine/ import no I/O and no upper layer."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
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


def imports(path: Path, *, names: bool = False) -> set[str]:
    """Every module ``path`` imports; with ``names``, also ``module.name`` of each from-import."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if names:
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
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


PROTOCOL_MODULES = sorted(
    f"cmcstream.protocol.{path.stem}"
    for path in (ROOT / "protocol").glob("*.py")
    if path.stem != "__init__"
)


@pytest.mark.parametrize("module", ["cmcstream.protocol", *PROTOCOL_MODULES])
def test_importing_the_protocol_loads_no_io(module: str) -> None:
    # What a fresh interpreter has loaded after the import, not only what the
    # files name: a parent package or a dependency may pull I/O in too.
    probe = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    loaded = json.loads(out)
    assert module in loaded
    io = [
        name
        for name in loaded
        if name.split(".")[0] in ("asyncio", "websockets")
        or name.startswith(("cmcstream.client", "cmcstream.server", "cmcstream.bus"))
    ]
    assert io == []


def test_the_client_session_does_no_io() -> None:
    # The link does the I/O and keeps the time; its session only decides.
    for name in imports(ROOT / "client" / "session.py"):
        assert name.split(".")[0] not in ("asyncio", "websockets", "socket", "time"), name
        assert name not in ("cmcstream.client.link", "cmcstream.client.stream"), name


def test_the_client_spells_no_protocol_constant() -> None:
    # Codes and the key header come from protocol/; the client re-spelling one
    # would let the two sides drift apart. (1006 is left out: it is also
    # RFC 6455's "no close frame", which the protocol's table does not hold.)
    spelled = re.compile(
        r"X-CMC_PRO_API_KEY|\b(?:1001|1002|1003|1004|1007|1010|2304|4004|4100|4101|4102)\b"
    )
    files = [*sorted((ROOT / "client").rglob("*.py")), ROOT / "exceptions.py"]
    for path in files:
        code = _without_docstrings(path.read_text())
        found = spelled.findall(code)
        assert not found, f"{path.relative_to(ROOT)} spells {found}"


def test_the_client_draws_channel_traits_from_the_protocol() -> None:
    from cmcstream.client import buffer, dedupe, items
    from cmcstream.protocol import channels

    assert buffer.LATEST_VALUE_CHANNELS is channels.LATEST_VALUE_CHANNELS
    assert dedupe.DEDUPED_CHANNELS is channels.DEDUPED_CHANNELS
    for name in ("LATEST_VALUE_CHANNELS", "DEDUPED_CHANNELS"):
        for module in (buffer, dedupe, items):
            assert name not in vars(module) or vars(module)[name] is vars(channels)[name]


def _without_docstrings(source: str) -> str:
    """``source`` minus docstrings and comments: documentation may name codes."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body[0] = ast.Pass()
    return ast.unparse(tree)
