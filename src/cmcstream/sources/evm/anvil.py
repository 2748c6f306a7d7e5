"""A local EVM node: anvil, from the ``chain/`` folder's npm packages.

``npm ci --prefix chain`` installs the anvil binary (a native executable in
``@foundry-rs/anvil-linux-amd64``), the Uniswap build artifacts, solc-js and
OpenZeppelin. Nothing here downloads anything.

anvil logs every transaction on its standard output; a pipe nobody reads fills
up and then blocks the node, so its output always goes to a file.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["Anvil", "ChainToolsMissing", "chain_dir"]

NPM_CI: str = "npm ci --prefix chain"
_PR_SET_PDEATHSIG = 1
_LISTENING = re.compile(rb"Listening on 127\.0\.0\.1:(\d+)")


def _die_with_parent() -> None:
    """In the child: the kernel ends it when the process that started it dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ChainToolsMissing(RuntimeError):
    """The ``chain/`` folder or its npm packages are not there."""


def chain_dir() -> Path:
    """The folder holding ``package.json`` and ``node_modules`` of the chain tools.

    ``CMCSTREAM_CHAIN_DIR`` when set, else the ``chain/`` folder of the source
    checkout this package runs from, else ``./chain``.
    """
    env = os.environ.get("CMCSTREAM_CHAIN_DIR")
    candidates = [Path(env)] if env else []
    candidates += [p / "chain" for p in Path(__file__).resolve().parents]
    candidates.append(Path.cwd() / "chain")
    for path in candidates:
        if (path / "package.json").is_file():
            if not (path / "node_modules").is_dir():
                raise ChainToolsMissing(
                    f"{path}/node_modules is missing: run `{NPM_CI}` in the source checkout"
                )
            return path
    raise ChainToolsMissing(
        "no chain/ folder found: run from the source checkout (after "
        f"`{NPM_CI}`) or set CMCSTREAM_CHAIN_DIR"
    )


class Anvil:
    """An anvil process on 127.0.0.1 and a free port, stopped on exit.

    Args:
        timestamp: the genesis block's time (epoch seconds); now by default.
        block_time: mine a block every this many seconds, as well as on each
            transaction (``None``: only on transactions).
        log_path: where its output goes; a temporary file by default.
        chain_id: the chain id it reports (anvil's default, 31337, when ``None``).
    """

    def __init__(
        self,
        *,
        timestamp: int | None = None,
        block_time: float | None = None,
        log_path: Path | None = None,
        chain_id: int | None = None,
    ) -> None:
        self.binary = chain_dir() / "node_modules" / ".bin" / "anvil"
        if not self.binary.exists():
            raise ChainToolsMissing(f"{self.binary} is missing: run `{NPM_CI}`")
        self.timestamp = timestamp
        self.block_time = block_time
        self.chain_id = chain_id
        self._own_log = log_path is None
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="anvil-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        self.log_path = log_path
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        args = [str(self.binary), "--host", "127.0.0.1", "--port", "0"]
        if self.timestamp is not None:
            args += ["--timestamp", str(self.timestamp)]
        if self.block_time is not None:
            args += ["--block-time", str(self.block_time)]
        if self.chain_id is not None:
            args += ["--chain-id", str(self.chain_id)]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        deadline = time.monotonic() + timeout
        try:
            while (match := _LISTENING.search(self.log_path.read_bytes())) is None:
                if self._process.poll() is not None:
                    raise RuntimeError(f"anvil exited: {self.log_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"anvil did not listen in {timeout} s")
                time.sleep(0.01)
        except BaseException:
            self.stop()
            raise
        self.port = int(match.group(1))

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._own_log:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> Anvil:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
