"""The EVM ingest benchmark runs end to end in quick mode and reports its figures.

Correctness only: no timing is compared with a target here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_evm_benchmark_measures_v2_and_v3(chain_tools: Path, tmp_path: Path) -> None:
    reference = sorted((ROOT / "benchmarks" / "results").glob("evm-ingest-*.json"))[-1]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "evm_ingest.py"), "--quick",
         "--out-dir", str(tmp_path), "--against", str(reference)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (out,) = tmp_path.glob("evm-ingest-*.json")
    result = json.loads(out.read_text())
    backfill = result["backfill"]
    assert backfill["logs"] > 0
    assert backfill["v3_logs"] > 0
    assert backfill["logs_per_cpu_s"] > 0
    assert backfill["v3_decode_only_logs_per_cpu_s"] > 0
    v3 = result["v3_backfill"]
    assert v3["v3_logs"] == 20  # one Swap a swap, and its two Transfers besides
    assert v3["logs"] == 3 * 20
    assert v3["logs_per_cpu_s"] > 0
    latency = result["latency"]
    for kind in ("v2", "v3"):
        assert latency["mined_to_push"][kind]["n"] == 5
        assert latency["head_to_push"][kind]["n"] > 0
    # Each figure beside the reference's.
    assert "v3_backfill.logs_per_cpu_s" in done.stdout
