"""Rolling metrics over the socket equal sums over the transactions received with them.

A client that records ``onchain@transaction`` of a token can rebuild every
window of its ``onchain@token_metric`` and of its pools' ``onchain@pool_metric``
pushes: the window read at a step ``S`` holds exactly the included swaps
stamped in ``(S - W, S]``. Volumes are added up as the engine states it (each
run of trades of one second left to right, then the runs exactly), so every
number must match to the bit.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from cmcstream.engine.numeric import add_up
from cmcstream.engine.onchain import POOL_WINDOWS, TOKEN_WINDOWS
from cmcstream.engine.trades import run_key
from cmcstream.testing import running_server
from tests.server.conftest import dial, recv_json, request, welcomed

CHAIN = 14
WALL_LIMIT_S = 25.0  # bounded whatever the machine's load
WANTED = 12  # metric pushes of each channel with a 5-minute window to check
SPEED = 100


@dataclass(frozen=True)
class Leg:
    """One included swap as one token or pool counts it."""

    ts: int
    buy: bool
    usd: float
    amount: float
    trader: str
    price: float


def token_leg(tx: dict[str, Any], token: str) -> Leg:
    zero = tx["t0a"] == token
    return Leg(
        ts=tx["ts"],
        buy=(tx["tp"] == "buy") == (tx["ba"] == token),  # the quote token sells when base is bought
        usd=tx["vu"],
        amount=tx["a0"] if zero else tx["a1"],
        trader=tx["ma"],
        price=tx["t0pu"] if zero else tx["t1pu"],
    )


def pool_leg(tx: dict[str, Any]) -> Leg:
    return token_leg(tx, tx["ba"])  # a pool counts as its base token does


def side_sums(legs: list[Leg], value: str) -> tuple[float, float, float]:
    """(buys, sells, both) as the engine adds them: per run and side, then exactly."""
    buys = [add_up([getattr(g, value) for g in run if g.buy], 0.0) for run in grouped(legs)]
    sells = [add_up([getattr(g, value) for g in run if not g.buy], 0.0) for run in grouped(legs)]
    return math.fsum(buys), math.fsum(sells), math.fsum(buys + sells)


def grouped(legs: list[Leg]) -> list[list[Leg]]:
    runs: dict[int, list[Leg]] = defaultdict(list)
    for leg in legs:
        runs[run_key(leg.ts)].append(leg)
    return list(runs.values())


def expected_token_window(legs: list[Leg]) -> dict[str, Any]:
    bvu, svu, vu = side_sums(legs, "usd")
    bvn, svn, vn = side_sums(legs, "amount")
    prices = [g.price for g in legs]
    first, last = (prices[0], prices[-1]) if prices else (None, None)
    return {
        "vu": vu,
        "vn": vn,
        "bvu": bvu,
        "svu": svu,
        "bvn": bvn,
        "svn": svn,
        "bc": sum(g.buy for g in legs),
        "sc": sum(not g.buy for g in legs),
        "txs": len(legs),
        "ut": len({g.trader for g in legs}),
        "but": len({g.trader for g in legs if g.buy}),
        "sut": len({g.trader for g in legs if not g.buy}),
        "h": max(prices, default=None),
        "l": min(prices, default=None),
        "pc": (last - first) / first * 100.0
        if first is not None and last is not None and first > 0
        else None,
    }


def expected_pool_window(legs: list[Leg]) -> dict[str, Any]:
    bvu, svu, _ = side_sums(legs, "usd")
    bvn, svn, _ = side_sums(legs, "amount")
    return {
        "bvu": bvu,
        "svu": svu,
        "bvn": bvn,
        "svn": svn,
        "ut": len({g.trader for g in legs}),
        "but": len({g.trader for g in legs if g.buy}),
        "sut": len({g.trader for g in legs if not g.buy}),
    }


def ceil_second(ts: int) -> int:
    return -(-ts // 1000) * 1000


async def test_metric_windows_are_sums_over_the_transactions_received() -> None:
    async with running_server(speed=SPEED, dex_activity=4.0) as node:
        token = node.world.busiest_token(CHAIN).address
        pools = [
            p.address
            for p in node.world.pools
            if p.chain == CHAIN and token in (p.token0, p.token1)
        ]
        params = {"platform_id": CHAIN, "address": token}
        requests = [
            {"channel": "onchain@transaction", "params": params},
            {"channel": "onchain@token_metric", "params": params},
            {
                "channel": "onchain@pool_metric",
                "params": {"platform_id": CHAIN, "pool_address": pools},
            },
        ]
        # Per channel: (step, payload) of each metric push whose step is known for sure.
        pushes: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        transactions: list[dict[str, Any]] = []
        seen: set[tuple[str, Any]] = set()
        covered_from: int | None = None
        async with dial(node.url, node.demo_key) as ws:
            await welcomed(ws)
            for i, req in enumerate(requests):
                ack = await request(ws, {"id": i, "method": "subscribe", **req})
                assert ack["type"] == "ack", ack
            deadline = time.monotonic() + WALL_LIMIT_S
            while time.monotonic() < deadline:
                frame = await recv_json(ws)
                assert frame["type"] == "data", frame
                data, channel = frame["data"], frame["channel"]
                if channel == "onchain@transaction":
                    key = (data["tx"], data.get("lgid", data.get("iix")))
                    if key not in seen:  # each swap once, as a client dedupes
                        seen.add(key)
                        transactions.append(data)
                    continue
                # The transaction subscription came first: every swap of the steps from
                # the one of the first metric push on has been received (the step is at
                # most the push's time; one second more for a timer that woke early).
                # The envelope's ts is wall time: the simulated time it was sent at.
                sent = node.clock.now_ms() - round((time.time() * 1000 - frame["ts"]) * SPEED)
                if covered_from is None:
                    covered_from = ceil_second(sent) + 1000
                # A step's swaps are sent before its metrics. The step is at least the
                # second of the last swap received and at most the push's time: when
                # both name the same second, that is the step.
                step = ceil_second(transactions[-1]["ts"]) if transactions else -1
                if step == sent // 1000 * 1000:
                    pushes[channel].append((step, data))
                five_minutes = covered_from + 300_000
                if all(
                    sum(1 for s, _ in pushes[c] if s >= five_minutes) >= WANTED
                    for c in ("onchain@token_metric", "onchain@pool_metric")
                ):
                    break
        assert covered_from is not None

    # Included swaps only; their legs as the token and each pool count them.
    included = [tx for tx in transactions if not tx["ex"]]
    token_legs = [token_leg(tx, token) for tx in included]
    pool_legs: dict[str, list[Leg]] = defaultdict(list)
    for tx in included:
        pool_legs[tx["pa"]].append(pool_leg(tx))

    checked: dict[str, int] = defaultdict(int)
    for step, metric in pushes["onchain@token_metric"]:
        for window in metric["sts"]:
            length = dict(TOKEN_WINDOWS)[window["win"]]
            if step - length < covered_from:
                continue  # the window reaches before the swaps received
            inside = [g for g in token_legs if step - length < g.ts <= step]
            got = {k: window[k] for k in expected_token_window([])}
            assert got == expected_token_window(inside), (window["win"], step)
            checked[window["win"]] += 1
    for step, metric in pushes["onchain@pool_metric"]:
        for name, length in POOL_WINDOWS:
            if step - length < covered_from:
                continue
            legs = pool_legs[metric["pa"]]
            inside = [g for g in legs if step - length < g.ts <= step]
            window = metric[name]
            got = {k: window[k] for k in expected_pool_window([])}
            assert got == expected_pool_window(inside), (metric["pa"], name, step)
            checked["pool " + name] += 1
    assert checked["1m"] >= WANTED
    assert checked["5m"] >= WANTED
    assert checked["pool 5m"] >= WANTED
    # The windows held trades (not only empty ones agreeing).
    assert sum(1 for g in token_legs if g.ts > covered_from) > 100
