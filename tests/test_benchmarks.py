"""The fan-out benchmark suite runs end to end in quick mode and reports every scenario.

Correctness only: every scenario ran on every server it covers, pushes arrived and
parsed, the result file has the figures the table and targets are made of. No
figure is compared with a target here: this machine's timings are not the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"
SCENARIOS = ("fanout", "latency", "onchain", "storm", "slow")
PUSHING = ("fanout", "latency", "onchain", "slow")


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--out-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = list(out.glob("run-*.json"))
    assert len(files) == 1, files
    result: dict[str, Any] = json.loads(files[0].read_text())
    return result, done.stdout


pytestmark = pytest.mark.slow


def test_every_scenario_ran_on_its_servers(quick: tuple[dict[str, Any], str]) -> None:
    result, _ = quick
    assert result["mode"] == "quick"
    assert set(result["scenarios"]) == set(SCENARIOS)
    for key, scenario in result["scenarios"].items():
        assert "cmcstream" in scenario["servers"], key
        for name, server in scenario["servers"].items():
            runs = server["runs"]
            assert len(runs) == 1, (key, name)
            assert all(run["ok"] for run in runs), (key, name, runs)
            assert server["summary"], (key, name)
    for key in ("fanout", "latency", "storm"):
        ran = {n for n, info in result["servers"].items() if info["ran"]}
        assert ran <= set(result["scenarios"][key]["servers"]), key
        assert {"cmcstream", "raw", "broadcast"} <= ran


def test_pushes_arrived_and_parsed(quick: tuple[dict[str, Any], str]) -> None:
    result, _ = quick
    for key in PUSHING:
        for name, server in result["scenarios"][key]["servers"].items():
            for run in server["runs"]:
                assert run["pushes"] > 0, (key, name)
                assert run["conns_opened"] == run["conns"], (key, name)
                window = run["during"] if key == "slow" else run
                assert window["audited"] > 0, (key, name)
                assert window["audit_bad"] == 0, (key, name)
                assert window["lat_samples"] > 0, (key, name)
                assert window["lat_p99_ms"] is not None, (key, name)
    for name, server in result["scenarios"]["storm"]["servers"].items():
        run = server["runs"][0]
        assert run["conns_opened"] == run["conns"] > 0, name
        assert run["conn_per_s"] > 0, name


def test_slow_readers_were_closed_with_1011(quick: tuple[dict[str, Any], str]) -> None:
    result, _ = quick
    run = result["scenarios"]["slow"]["servers"]["cmcstream"]["runs"][0]
    assert run["slow_conns"] > 0
    assert run["baseline"]["healthy_pushes_per_s"] > 0
    assert run["during"]["healthy_pushes_per_s"] > 0
    for key in ("healthy_ratio", "rss_peak_slow_mib", "server_slow_closed", "slow_close_codes"):
        assert run[key] is not None, key


def test_node_peer_ran_or_says_why(quick: tuple[dict[str, Any], str]) -> None:
    result, stdout = quick
    node = result["servers"]["node"]
    if shutil.which("node") is None:
        assert not node["ran"]
        assert "not on PATH" in node["why_not"]
        assert "NOT RUN" in stdout
    elif not node["ran"]:
        # For example, no access to the npm registry for `npm ci`: reported, not hidden.
        assert node["why_not"]
        assert "NOT RUN" in stdout
    else:
        assert result["scenarios"]["fanout"]["servers"]["node"]["runs"][0]["ok"]


def test_table_and_targets(quick: tuple[dict[str, Any], str]) -> None:
    result, stdout = quick
    assert "Targets" in stdout
    assert "1. market fan-out" in stdout
    assert "peers omitted" in stdout
    targets = result["targets"]
    assert len(targets) == 7
    for row in targets:
        assert row["status"] in ("PASS", "FAIL", "NOT RUN"), row
        if row["status"] == "NOT RUN":
            assert row["why"], row
        else:
            assert row["value"] is not None, row
