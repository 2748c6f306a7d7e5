"""The fan-out benchmark suite runs end to end in quick mode and reports every scenario.

Correctness only: every scenario ran on every server it covers, pushes arrived and
parsed, the result file has the figures the table and targets are made of. No
figure is compared with a target here: this machine's timings are not the test.
"""

from __future__ import annotations

import dataclasses
import json
import os
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


def run_quick(
    script: Path, out: Path, *args: str, timeout: float, saves: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run a benchmark with ``--out-dir out``: it succeeds and saves one result, ``saves``."""
    done = subprocess.run(
        [sys.executable, str(script), *args, "--out-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = list(out.glob(saves))
    assert len(files) == 1, files
    return done, json.loads(files[0].read_text())


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench")
    done, result = run_quick(RUN, out, "--quick", timeout=240, saves="run-*.json")
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


# -- the request flood ---------------------------------------------------------------------------

FLOOD = ROOT / "benchmarks" / "request_flood.py"


def test_request_flood_quick_compares_two_servers(tmp_path: Path) -> None:
    """Both subjects ran both phases, the flood was answered, the bystander measured, the
    target was judged, and no child process outlived the harness."""
    done, result = run_quick(
        FLOOD,
        tmp_path,
        *("--quick", "--server-src", str(ROOT / "src"), "--window", "2"),
        *("--nesting-every", "5", "--baseline", "0.5", "--seconds", "1", "--grace", "3"),
        timeout=90,
        saves="request-flood-*.json",
    )
    assert result["mode"] == "quick"
    assert [s["name"] for s in result["subjects"]] == ["current", f"src {ROOT / 'src'}"]
    for subject in result["subjects"]:
        assert Path(subject["imported_from"]).is_relative_to(ROOT / "src"), subject
    assert len(result["runs"]) == 2
    for run in result["runs"]:
        assert run["ok"], run
        idle, flood = run["idle"], run["flood"]
        assert idle["ping_rtt"]["count"] == 5, idle
        assert idle["pings_unanswered"] == 0, idle
        assert flood["ping_rtt"]["count"] == 10, flood
        assert flood["ping_rtt"]["p99_ms"] is not None
        assert flood["requests_answered"] >= 0, flood
        whole = flood["whole_flood"]
        assert whole["answered"] >= 9, whole  # one reply per connection before measuring
        assert whole["by_reply"].get("error 2303", 0) > 0, whole
        # The nested ping is answered with 2201 or closes the connection (which is reopened).
        assert whole["by_reply"].get("error 2201", 0) > 0 or whole["closes"], whole
        for pid in (run["server_pid"], run["floodgen_pid"]):
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    targets = result["targets"]
    assert len(targets) == 2
    for row in targets:
        assert row["status"] in ("PASS", "FAIL"), row
        assert row["value"] is not None
    assert "Target" in done.stdout
    assert "bystander ping p99 < 50 ms" in done.stdout


# -- the relay's credits -------------------------------------------------------------------------

RELAY = ROOT / "benchmarks" / "relay_credits.py"


def test_relay_credits_quick_compares_upstream_with_local(tmp_path: Path) -> None:
    """Every client ran, the upstream held one subscription per topic, both billing models
    were reckoned alike by the relay and the upstream, and the relay saved credits."""
    done, result = run_quick(RELAY, tmp_path, "--quick", timeout=90, saves="relay-credits-*.json")
    assert result["mode"] == "quick"
    assert [run["model"] for run in result["runs"]] == ["per_subscription", "per_message"]
    for run in result["runs"]:
        assert run["clients_failed"] == 0, run
        assert run["upstream_topics"] == result["topics"], run
        assert run["credits_upstream"] == run["credits_upstream_reckoned"], run
        assert run["local_pushes_received"] > run["upstream_pushes"] > 0, run
        assert 0 < run["credits_upstream"] < run["credits_local"], run
    by_subscription = result["runs"][0]
    assert by_subscription["credits_upstream"] == pytest.approx(result["topics"] * 0.1)
    assert by_subscription["credits_local"] == pytest.approx(
        by_subscription["local_subscriptions"] * 0.1
    )
    assert "saved" in done.stdout


def test_the_fanout_suite_can_start_cmcstream_without_metrics(tmp_path: Path) -> None:
    # `run.py --set metrics=0` is how the metrics' overhead is measured: same run, off and on.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from fanout.servers import Launch, _cmcstream_argv
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    db, frames = tmp_path / "keys.db", tmp_path / "frames"
    for slow_timeout_s in (None, 1.0):  # `serve`, and the benchmark's own launcher
        launch = Launch(1.0, 0, 0, 600, db, frames, slow_timeout_s=slow_timeout_s)
        on, _ = _cmcstream_argv(launch)
        off, _ = _cmcstream_argv(dataclasses.replace(launch, metrics=False))
        assert "--no-metrics" not in on
        assert sorted(off) == sorted([*on, "--no-metrics"])


def test_metrics_overhead_quick(tmp_path: Path) -> None:
    done, result = run_quick(
        ROOT / "benchmarks" / "metrics_overhead.py",
        tmp_path,
        "--quick",
        timeout=60,
        saves="metrics-overhead-*.json",
    )
    assert "metrics overhead:" in done.stdout
    assert len(result["ns_per_push"]["on"]) == len(result["ns_per_push"]["off"]) == 2
    assert all(ns > 0 for ns in result["ns_per_push"]["on"] + result["ns_per_push"]["off"])


# -- the exchange source -------------------------------------------------------------------------

EXCHANGE_INGEST = ROOT / "benchmarks" / "exchange_ingest.py"


def test_exchange_ingest_quick_counts_every_trade(tmp_path: Path) -> None:
    """Every replayed trade went through ccxt into the venue book, and both rates came out."""
    done, result = run_quick(
        EXCHANGE_INGEST, tmp_path, "--quick", timeout=120, saves="exchange-ingest-*.json"
    )
    assert result["mode"] == "quick"
    e2e, alone = result["end_to_end"], result["book_and_engine"]
    assert e2e["trades"] >= 3_000  # the flush frames add a few
    assert e2e["frames"] == 300
    assert e2e["trades_per_cpu_s"] > 0
    assert alone["trades"] == 3_000
    assert alone["trades_per_cpu_s"] > 0
    assert "trades/CPU s" in done.stdout
