"""The exchange source: trades ingested per core, through ccxt, the venue book and the engine.

A loopback venue replays Kraken's recorded WebSocket v2 ``trade`` frames
(``tests/data/exchanges``) to ccxt's own Kraken client, as fast as the socket
takes them. The frames are the recorded ones repeated with fresh trade ids,
``--batch`` trades a frame (Kraken batches the fills of one taker order). The
source takes every trade into its venue book; every ``--tick-ms`` the book's
prints go into a :class:`MarketEngine`, which computes the push of BTC.

Two figures, each trades per CPU second of this process:

* **end to end**: ccxt's parsing of the frames, the venue book and the engine
  (the loopback venue runs in this process too, so its sending is included);
* **book + engine**: the same trades handed straight to the venue book, no
  ccxt, for what the aggregation and the engine cost alone.

Writes ``benchmarks/results/exchange-ingest-<time>.json``; ``--compare FILE``
prints the ratio to an earlier result.

    python benchmarks/exchange_ingest.py [--trades 100000] [--batch 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the recordings live beside the tests

from tests.exchange_recordings import KRAKEN, frames, kraken_venue  # noqa: E402

from cmcstream.engine.market import MarketEngine  # noqa: E402
from cmcstream.sources.exchanges.source import ExchangeSource  # noqa: E402
from cmcstream.sources.exchanges.venues import VenueBook  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BTC = 1


def build_frames(total: int, batch: int) -> list[str]:
    """The recorded trades, repeated with fresh ids, ``batch`` to a frame."""
    recorded = [t for f in frames(KRAKEN / "ws-trade.jsonl") for t in json.loads(f)["data"]]
    out = []
    trade_id = recorded[0]["trade_id"]
    for start in range(0, total, batch):
        data = []
        for i in range(start, min(start + batch, total)):
            trade = dict(recorded[i % len(recorded)])
            trade["trade_id"] = trade_id + i
            data.append(trade)
        out.append(json.dumps({"channel": "trade", "type": "update", "data": data}))
    return out


async def end_to_end(total: int, batch: int, tick_ms: int) -> dict[str, Any]:
    venue = kraken_venue()
    await venue.start()
    source = ExchangeSource(
        ["kraken"],
        ["BTC"],
        ["USDT"],
        urls={"kraken": {"public": venue.http_url, "ws.publicV2": venue.ws_url}},
        # A deeper trade cache than ccxt's 1000: frames come faster than any venue's.
        client_config={"enableRateLimit": False, "options": {"tradesLimit": 50_000}},
    )
    engine = MarketEngine()
    payloads = 0
    try:
        async with asyncio.timeout(600):
            await source.start()
            for event in source.backfill(time.time_ns() // 1_000_000, {}):
                engine.apply(event)
            await venue.wait_subscribed()
            encoded = build_frames(total, batch)

            async def ticks() -> None:
                nonlocal payloads
                while True:
                    await asyncio.sleep(tick_ms / 1000)
                    now = time.time_ns() // 1_000_000
                    for event in source.step(now, {}):
                        engine.apply(event)
                    payloads += len(engine.tick(now, [BTC]))

            ticker = asyncio.get_running_loop().create_task(ticks())
            wall0, cpu0 = time.perf_counter(), time.process_time()
            for frame in encoded:
                await venue.send(frame)
            # ccxt hands over what arrived while it was busy with the next frame, so the
            # last trades come out when one more frame comes in.
            flush = build_frames(1, 1)[0]
            while source.received < total:
                await venue.send(flush)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await source.wait_received(total)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            ticker.cancel()
    finally:
        await source.aclose()
        await venue.aclose()
    return {
        "trades": source.received,
        "frames": len(encoded),
        "wall_s": wall,
        "cpu_s": cpu,
        "trades_per_cpu_s": source.received / cpu,
        "trades_per_wall_s": source.received / wall,
        "payloads": payloads,
    }


def book_and_engine(total: int, tick_every: int) -> dict[str, Any]:
    """The same trades straight into the venue book, printing every ``tick_every`` trades."""
    recorded = [t for f in frames(KRAKEN / "ws-trade.jsonl") for t in json.loads(f)["data"]]
    trades = [(t["price"], t["price"] * t["qty"]) for t in recorded]
    book, engine = VenueBook(), MarketEngine()
    engine.apply(next(iter(_listing())))
    now = time.time_ns() // 1_000_000
    cpu0 = time.process_time()
    for i in range(total):
        price, usd = trades[i % len(trades)]
        book.add("kraken", BTC, now, price, usd)
        if i % tick_every == tick_every - 1:
            now += 100
            for event in book.prints(now):
                engine.apply(event)
            engine.tick(now, [BTC])
    cpu = time.process_time() - cpu0
    return {"trades": total, "cpu_s": cpu, "trades_per_cpu_s": total / cpu}


def _listing() -> Any:
    from cmcstream.sources.exchanges.assets import AssetTable

    return [AssetTable.build(["USDT"]).listings[BTC]]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10, help="trades per WebSocket frame")
    parser.add_argument("--tick-ms", type=int, default=100, help="how often prints are taken")
    parser.add_argument("--quick", action="store_true", help="a few thousand trades")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--compare", type=Path, help="an earlier result to compare with")
    args = parser.parse_args()
    total = 3_000 if args.quick else args.trades
    e2e = asyncio.run(end_to_end(total, args.batch, args.tick_ms))
    alone = book_and_engine(total * (1 if args.quick else 10), args.batch * 10)
    result = {
        "benchmark": "exchange-ingest",
        "mode": "quick" if args.quick else "full",
        "batch": args.batch,
        "end_to_end": e2e,
        "book_and_engine": alone,
    }
    print(
        f"end to end:    {e2e['trades']} trades in {e2e['frames']} frames,"
        f" {e2e['cpu_s']:.2f} CPU s, {e2e['trades_per_cpu_s']:,.0f} trades/CPU s"
        f" ({e2e['trades_per_wall_s']:,.0f}/wall s), {e2e['payloads']} pushes computed"
    )
    print(
        f"book + engine: {alone['trades']} trades, {alone['cpu_s']:.2f} CPU s,"
        f" {alone['trades_per_cpu_s']:,.0f} trades/CPU s"
    )
    if args.compare is not None:
        ref = json.loads(args.compare.read_text())
        for key in ("end_to_end", "book_and_engine"):
            ratio = result[key]["trades_per_cpu_s"] / ref[key]["trades_per_cpu_s"]  # type: ignore[index]
            print(f"{key}: {ratio:.2f}× the reference")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    path = args.out_dir / f"exchange-ingest-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
