"""The playground's plain HTTP: the page, its files and the choices it offers."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from cmcstream.app import App
from cmcstream.config import ServerConfig
from cmcstream.feed.choices import engine_choices, market_choices, simulated_choices
from cmcstream.protocol.channels import CHANNELS, KLINE_INTERVALS
from cmcstream.server import playground
from cmcstream.server.keystore import KeyStore
from cmcstream.sources.simulator.dex import DexSimulator
from cmcstream.sources.simulator.dex_world import DexWorld
from cmcstream.testing import running_server
from cmcstream.testing.server import RunningNode
from tests.server.test_connect import http_get

STATIC = Path(playground.__file__).parent / "static"


async def get(node: App, path: str) -> tuple[int, str, bytes]:
    return await asyncio.to_thread(http_get, f"http://127.0.0.1:{node.port}{path}")


async def choices_of(node: App) -> dict[str, Any]:
    status, ctype, body = await get(node, "/playground/choices.json")
    assert (status, ctype) == (200, "application/json")
    document: dict[str, Any] = json.loads(body)
    return document


async def test_the_page_and_its_files(node: RunningNode) -> None:
    status, ctype, page = await get(node, "/")
    assert (status, ctype) == (200, "text/html; charset=utf-8")
    assert b'src="/playground/playground.js"' in page
    for path, expected in [
        ("/playground/playground.js", "text/javascript; charset=utf-8"),
        ("/playground/playground.css", "text/css; charset=utf-8"),
        ("/playground/vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
        ("/playground/vendor/uPlot.min.css", "text/css; charset=utf-8"),
        ("/playground/vendor/uPlot.LICENSE", "text/plain; charset=utf-8"),
    ]:
        status, ctype, body = await get(node, path)
        assert (status, ctype) == (200, expected), path
        assert body == (STATIC / path.removeprefix("/playground/")).read_bytes()
    # Only shipped files are served: nothing beside or above them.
    for path in [
        "/playground/",
        "/playground/nope.js",
        "/playground/../http.py",
        "/playground/%2e%2e/__init__.py",
        "/playground/vendor",
        "/index.html",
    ]:
        status, _, _ = await get(node, path)
        assert status == 404, path
    # The WebSocket endpoint is untouched.
    assert (await get(node, "/v1"))[0] == 426


async def test_the_choices_are_the_simulated_world(node: RunningNode) -> None:
    document = await choices_of(node)
    channels = {c["name"]: c for c in document["channels"]}
    assert list(channels) == [spec.name for spec in CHANNELS]
    kline = channels["onchain@kline"]
    assert [p["name"] for p in kline["params"]] == ["platform_id", "address", "interval"]
    assert kline["params"][2]["choices"] == list(KLINE_INTERVALS)
    assert channels["onchain@holders_metrics"]["holders_only"] is True

    choices = document["choices"]
    assert [a["id"] for a in choices["assets"][:2]] == [1, 1027]
    assert len(choices["assets"]) == node.config.universe_size
    world = node.world
    assert world is not None
    assert [p["id"] for p in choices["platforms"]] == list(world.chains)
    assert {(t["platform_id"], t["address"]) for t in choices["tokens"]} == {
        (t.chain, t.address) for t in world.tokens
    }
    pools = {(p["platform_id"], p["address"]): p for p in choices["pools"]}
    first = world.pools[0]
    assert pools[first.chain, first.address]["dex"] == first.dex
    assert "/" in pools[first.chain, first.address]["pair"]
    wallets = choices["wallets"]
    assert wallets
    assert all(world.wallet(w["platform_id"], w["address"]) for w in wallets)
    assert wallets[0]["tags"]  # tagged wallets come first


async def test_a_gateway_without_the_feed_builds_the_same_choices() -> None:
    config = ServerConfig(host="127.0.0.1", port=0, universe_size=300, dex_warm_up=False)
    store = KeyStore(":memory:")
    node = App(config, store, feed=False)
    await node.start()
    try:
        document = await choices_of(node)
        again = await choices_of(node)  # built once
    finally:
        await node.shutdown()
        store.close()
    assert document["choices"] == json.loads(msgspec.json.encode(simulated_choices(config)))
    assert len(document["choices"]["assets"]) == 300
    assert document["choices"]["tokens"]
    assert again == document


async def test_another_on_chain_source_offers_what_the_engine_saw_listed() -> None:
    world = DexWorld.build(3)
    async with running_server(universe_size=50, dex=DexSimulator(world, seed=3)) as node:
        choices = (await choices_of(node))["choices"]
        assert node.world is None
        listed = engine_choices(market_choices(node.feed.universe), node.feed.onchain.engine)
    assert {(t["platform_id"], t["address"]) for t in choices["tokens"]} == {
        (t.chain, t.address) for t in world.tokens
    }
    assert {(p["platform_id"], p["address"]) for p in choices["pools"]} == {
        (p.chain, p.address) for p in world.pools
    }
    assert [p["id"] for p in choices["platforms"]] == list(world.chains)
    assert choices["wallets"] == []
    assert len(listed.tokens) == len(world.tokens)


def test_every_static_file_is_package_data() -> None:
    # A plain `pip install .` ships only what package-data names.
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["cmcstream"]
    package = STATIC.parents[2]
    files = [p.relative_to(package).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert "server/playground/static/index.html" in files
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
