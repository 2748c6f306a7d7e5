"""Medians, ratios to the peers, targets, and the table ``run.py`` prints."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["METRICS", "Metric", "ratios", "summarize", "table", "targets", "targets_table"]

PEERS: Final = ("raw", "broadcast", "node")
TITLES: Final = {
    "cmcstream": "cmcstream",
    "raw": "raw ceiling",
    "broadcast": "ws.broadcast",
    "node": "node ws",
}


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    kind: str  # rate | pct | ms | kib | mib | us | count | ratio


METRICS: Final[dict[str, list[Metric]]] = {
    "fanout": [
        Metric("pushes_per_s", "delivered pushes/s", "rate"),
        Metric("server_cpu_pct", "server CPU %", "pct"),
        Metric("server_us_per_push", "server CPU µs/push", "us"),
        Metric("rss_load_per_conn_kib", "server RSS/conn under load KiB", "kib"),
        Metric("rss_idle_per_conn_kib", "server RSS/conn idle KiB", "kib"),
        Metric("lat_p99_ms", "p99 latency (sampled) ms", "ms"),
        Metric("loadgen_cpu_pct", "load generator CPU %", "pct"),
        Metric("other_cpu_pct", "other processes CPU %", "pct"),
    ],
    "latency": [
        Metric("pushes_per_s", "delivered pushes/s", "rate"),
        Metric("lat_p50_ms", "p50 latency ms", "ms"),
        Metric("lat_p99_ms", "p99 latency ms", "ms"),
        Metric("lat_p999_ms", "p99.9 latency ms", "ms"),
        Metric("server_cpu_pct", "server CPU %", "pct"),
        Metric("other_cpu_pct", "other processes CPU %", "pct"),
    ],
    "onchain": [
        Metric("pushes_per_s", "delivered pushes/s", "rate"),
        Metric("lat_p50_ms", "p50 latency ms", "ms"),
        Metric("lat_p99_ms", "p99 latency ms", "ms"),
        Metric("server_cpu_pct", "server CPU %", "pct"),
        Metric("server_us_per_push", "server CPU µs/push", "us"),
        Metric("other_cpu_pct", "other processes CPU %", "pct"),
    ],
    "storm": [
        Metric("conn_per_s", "connections/s (to welcome)", "rate"),
        Metric("welcome_ms_p50", "connect→welcome p50 ms", "ms"),
        Metric("welcome_ms_p99", "connect→welcome p99 ms", "ms"),
        Metric("rss_idle_per_conn_kib", "server RSS/conn idle KiB", "kib"),
        Metric("listen_drops", "accept-queue drops", "count"),
        Metric("connect_failed", "failed connections", "count"),
    ],
    "slow": [
        Metric("healthy_ratio", "healthy throughput, slow ÷ none", "ratio"),
        Metric("healthy_pushes_per_s", "healthy pushes/s with slow readers", "rate"),
        Metric("baseline_lat_p99_ms", "healthy p99 ms, no slow readers", "ms"),
        Metric("lat_p99_ms", "healthy p99 ms, with slow readers", "ms"),
        Metric("server_cpu_pct", "server CPU % with slow readers", "pct"),
        Metric("rss_before_slow_mib", "server RSS before MiB", "mib"),
        Metric("rss_peak_slow_mib", "server RSS peak with slow MiB", "mib"),
        Metric("rss_growth_per_slow_kib", "RSS growth per slow reader KiB", "kib"),
        Metric("slow_conns", "slow readers", "count"),
        Metric("slow_detect_s", "s until the server holds them all", "ms"),
        Metric("server_slow_closed", "closed 1011 (server count)", "count"),
        Metric("server_open_before_resume", "conns open on server before resume", "count"),
        Metric("slow_closed_1011", "slow readers that saw close 1011", "count"),
        Metric("server_open_after_resume", "conns open on server after resume", "count"),
        Metric("other_cpu_pct", "other processes CPU %", "pct"),
    ],
}


def _value(run: dict[str, Any], key: str) -> float | None:
    value = run.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def summarize(runs: list[dict[str, Any]], metrics: list[Metric]) -> dict[str, dict[str, float]]:
    """Median, min and max of every metric over the runs that completed."""
    out: dict[str, dict[str, float]] = {}
    ok = [r for r in runs if r.get("ok")]
    for metric in metrics:
        values = [v for r in ok if (v := _value(r, metric.key)) is not None]
        if values:
            out[metric.key] = {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
                "n": len(values),
            }
    return out


def ratios(
    servers: dict[str, dict[str, Any]], metrics: list[Metric]
) -> dict[str, dict[str, float]]:
    """cmcstream's median ÷ each peer's median, per metric."""
    mine = servers.get("cmcstream", {}).get("summary", {})
    out: dict[str, dict[str, float]] = {}
    for metric in metrics:
        ours = mine.get(metric.key)
        for peer in PEERS:
            theirs = servers.get(peer, {}).get("summary", {}).get(metric.key)
            if ours and theirs and theirs["median"]:
                out.setdefault(metric.key, {})[peer] = ours["median"] / theirs["median"]
    return out


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "rate":
        if value >= 1e6:
            return f"{value / 1e6:.2f}M"
        if value >= 1e4:
            return f"{value / 1e3:.0f}k"
        if value >= 1e3:
            return f"{value / 1e3:.1f}k"
        return f"{value:.0f}"
    if kind == "count":
        return f"{value:,.0f}"
    if kind == "ratio":
        return f"{value:.2f}×"
    if kind in ("ms", "us"):
        return f"{value:.3g}" if value < 100 else f"{value:.0f}"
    return f"{value:.1f}"


def _cell(stats: dict[str, float] | None, kind: str, runs: int) -> str:
    if stats is None:
        return "–"
    text = _fmt(stats["median"], kind)
    if runs > 1 and stats["n"] > 1:
        text += f" ({_fmt(stats['min'], kind)}–{_fmt(stats['max'], kind)})"
    return text


def table(result: dict[str, Any]) -> str:
    """The comparison table: per scenario, every metric, cmcstream and each peer."""
    lines: list[str] = []
    runs = int(result["settings"]["runs"])
    servers = [s for s in TITLES if s in result["servers"]]
    for key, scenario in result["scenarios"].items():
        metrics = METRICS[key]
        shown = [s for s in servers if s in scenario["servers"]]
        lines.append("")
        lines.append(f"{scenario['title']} — {scenario['description']}")
        if scenario.get("omitted"):
            lines.append(f"  ({scenario['omitted']})")
        width = max(len(m.label) for m in metrics) + 2
        cells: list[list[str]] = [[TITLES[s] for s in shown]]
        for metric in metrics:
            row = []
            mine = scenario["servers"].get("cmcstream", {}).get("summary", {}).get(metric.key)
            for name in shown:
                stats = scenario["servers"][name]["summary"].get(metric.key)
                text = _cell(stats, metric.kind, runs)
                if name != "cmcstream" and mine and stats and stats["median"]:
                    text += f" [{mine['median'] / stats['median']:.2f}×]"
                row.append(text)
            cells.append(row)
        widths = [max(len(c[i]) for c in cells) + 2 for i in range(len(shown))]
        for label, row in zip(["", *(m.label for m in metrics)], cells, strict=True):
            lines.append(
                "  "
                + label.ljust(width)
                + "".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
            )
        for name in shown:
            failed = [r for r in scenario["servers"][name]["runs"] if not r.get("ok")]
            for run in failed:
                lines.append(f"  ! {TITLES[name]} run {run['run']} failed: {run['error'][:300]}")
            runs_of = scenario["servers"][name]["runs"]
            noisy = [r for r in runs_of if r.get("noisy")]
            if noisy:
                worst = max(r.get("other_cpu_pct", 0.0) for r in noisy)
                limit = result["settings"]["noisy_above_pct"]
                lines.append(
                    f"  ! {TITLES[name]}: other processes used more than {limit:g} % of a core "
                    f"in {len(noisy)} of {len(runs_of)} run(s) (up to {worst:.0f} %): noisy"
                )
            bound = [r for r in runs_of if r.get("loadgen_cpu_pct", 0) > 90]
            if bound:
                lines.append(
                    f"  ! {TITLES[name]}: load generator above 90 % of its core in "
                    f"{len(bound)} run(s); its figures are lower bounds"
                )
    lines.append("")
    lines.append("  [n×] = cmcstream ÷ that peer, medians; each cell: median (min–max) of the runs")
    return "\n".join(lines)


def _median(result: dict[str, Any], scenario: str, server: str, key: str) -> float | None:
    stats = (
        result["scenarios"]
        .get(scenario, {})
        .get("servers", {})
        .get(server, {})
        .get("summary", {})
        .get(key)
    )
    return None if stats is None else float(stats["median"])


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its value and PASS, FAIL or NOT RUN (and why)."""
    rows: list[dict[str, Any]] = []

    def add(name: str, value: float | None, ok: bool | None, shown: str, why: str = "") -> None:
        status = "NOT RUN" if value is None else ("PASS" if ok else "FAIL")
        rows.append({"target": name, "value": value, "shown": shown, "status": status, "why": why})

    mine = _median(result, "fanout", "cmcstream", "pushes_per_s")
    for peer, factor in (("raw", 0.8), ("broadcast", 5.0), ("node", 3.0)):
        theirs = _median(result, "fanout", peer, "pushes_per_s")
        ratio = mine / theirs if mine is not None and theirs else None
        why = (
            ""
            if ratio is not None
            else result["servers"].get(peer, {}).get("why_not") or "no result"
        )
        add(
            f"market fan-out ≥ {factor:g}× {TITLES[peer]}",
            ratio,
            ratio is not None and ratio >= factor,
            _fmt(ratio, "ratio"),
            why,
        )
    p99 = _median(result, "latency", "cmcstream", "lat_p99_ms")
    add(
        "latency p99 ≤ 5 ms at 20,000 pushes/s",
        p99,
        p99 is not None and p99 <= 5.0,
        f"{_fmt(p99, 'ms')} ms",
    )
    rss = _median(result, "fanout", "cmcstream", "rss_load_per_conn_kib")
    limit = 40_000 / 1024
    add(
        "RSS ≤ 40 KB per connection holding 100 subscriptions",
        rss,
        rss is not None and rss <= limit,
        f"{_fmt(rss, 'kib')} KiB ({(rss or 0) * 1.024:.1f} KB)",
    )
    rate = _median(result, "storm", "cmcstream", "conn_per_s")
    add(
        "connect storm ≥ 3,000 conn/s (key check and welcome)",
        rate,
        rate is not None and rate >= 3000,
        f"{_fmt(rate, 'count')} conn/s",
    )
    ratio = _median(result, "slow", "cmcstream", "healthy_ratio")
    add(
        "slow readers: healthy keep ≥ 0.9× throughput",
        ratio,
        ratio is not None and ratio >= 0.9,
        _fmt(ratio, "ratio"),
    )
    return rows


def targets_table(rows: list[dict[str, Any]]) -> str:
    width = max(len(r["target"]) for r in rows) + 2
    lines = ["", "Targets"]
    for row in rows:
        why = f"  ({row['why']})" if row["why"] else ""
        lines.append(f"  {row['target'].ljust(width)}{row['shown']:>22}  {row['status']}{why}")
    return "\n".join(lines)
