"""`pip install cmcstream` without extras: the commands load, and need no optional package.

Redis, PostgreSQL, the chain tools, the admin API and the exchange clients are extras
(`redis`, `postgres`, `evm`, `admin`, `exchanges`); the test environment has them all, so
this hides them from a fresh interpreter instead.
"""

from __future__ import annotations

import subprocess
import sys

HIDE_EXTRAS = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"redis", "psycopg", "psycopg_pool", "web3", "eth_abi",
                                   "fastapi", "starlette", "uvicorn", "httpx", "pydantic",
                                   "ccxt"}:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, Hide())
from cmcstream.cli import main
for command in (["--help"], ["serve", "--help"], ["keys", "--help"], ["market", "--limit", "3"]):
    try:
        main(command, prog_name="cmcstream")
    except SystemExit as exc:
        assert exc.code in (0, None), (command, exc.code)
import cmcstream.app, cmcstream.server.gateway
import cmcstream.sources.exchanges.venues, cmcstream.sources.exchanges.source
try:
    main(["serve", "--source", "exchanges", "--exchange", "kraken"], prog_name="cmcstream")
except SystemExit as exc:
    assert exc.code == 2, exc.code  # a usage error saying which extra to install
print("OK")
"""


def test_the_commands_need_no_extra() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HIDE_EXTRAS],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.rstrip().endswith("OK")
