"""``serve --source replay:FILE`` and ``--source relay`` as a user runs them: real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmcstream.cli import main
from tests.replay.test_replay import recording
from tests.test_cli import serve_and_interrupt

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize(
    ("source", "extra", "message"),
    [
        ("replay", [], "--source replay needs a file"),
        ("replay:", [], "--source replay needs a file"),
        ("replay:/no/such/file.jsonl", [], "no file at /no/such/file.jsonl"),
        ("relay", [], "--source relay needs --upstream-key"),
        ("cmc", [], "expected sim, exchanges, evm, replay:FILE or relay, not 'cmc'"),
        ("relay", ["--upstream-key", "k", "--workers", "2"], "runs in one process"),
    ],
)
def test_bad_sources_are_usage_errors(
    tmp_path: Path, source: str, extra: list[str], message: str
) -> None:
    args = ["serve", "--db", str(tmp_path / "k.db"), "--source", source, *extra]
    result = CliRunner(env={"CMC_PRO_API_KEY": None}).invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def serve(tmp_path: Path, name: str, *args: str) -> subprocess.Popen[str]:
    command = ["serve", "--port", "0", "--db", str(tmp_path / f"{name}.db"), *args]
    return subprocess.Popen(
        [sys.executable, "-m", "cmcstream", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )


def test_serve_replays_a_recording_in_a_loop(tmp_path: Path) -> None:
    path = recording(tmp_path / "r.jsonl", [(0.05 * n, 1, float(n)) for n in range(20)])
    with serve(tmp_path, "replay", "--source", f"replay:{path}", "--repeat") as proc:
        serve_and_interrupt(proc)


def test_serve_relays_another_server(tmp_path: Path) -> None:
    # The upstream replays a recording: it is ready sooner than a simulated market.
    path = recording(tmp_path / "r.jsonl", [(0.05 * n, 1, float(n)) for n in range(20)])
    with serve(tmp_path, "upstream", "--source", f"replay:{path}", "--repeat") as upstream:
        try:
            assert upstream.stdout is not None
            banner = ""
            for line in upstream.stdout:
                banner += line
                if line.startswith("Press Ctrl-C"):
                    break
            url = re.search(r"listening on (ws://\S+)", banner)
            key = re.search(r"demo key: (\S+)", banner)
            assert url is not None, banner
            assert key is not None, banner
            relay = (
                "--source",
                "relay",
                "--upstream",
                url.group(1),
                "--upstream-key",
                key.group(1),
            )
            with serve(tmp_path, "relay", *relay) as proc:
                serve_and_interrupt(proc)
        finally:
            upstream.kill()
            upstream.wait()
