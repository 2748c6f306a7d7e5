"""``serve --source exchanges``: the options, and the errors a user gets for bad ones."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from cmcstream.cli import _parse_sources, main


@pytest.mark.parametrize(
    ("values", "sides"),
    [
        ((), ("sim", "sim")),
        (("sim",), ("sim", "sim")),
        (("exchanges",), ("exchanges", "sim")),
        (("evm",), ("sim", "evm")),
        (("exchanges", "evm"), ("exchanges", "evm")),
        (("evm", "sim", "exchanges"), ("exchanges", "evm")),
        (("exchanges", "exchanges"), ("exchanges", "sim")),
    ],
)
def test_each_source_names_its_side(values: tuple[str, ...], sides: tuple[str, str]) -> None:
    sources = _parse_sources(values)
    assert (sources.market, sources.onchain) == sides
    assert sources.whole is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "exchanges"], "--source exchanges needs --exchange ID"),
        (["--exchange", "kraken"], "--exchange needs --source exchanges"),
        (
            ["--source", "exchanges", "--exchange", "nosuchexchange"],
            "ccxt has no WebSocket client for nosuchexchange",
        ),
        (
            ["--source", "exchanges", "--exchange", "kraken", "--exchange-url", "kraken:public"],
            "expected ID:PATH=URL",
        ),
        (
            ["--source", "exchanges", "--exchange", "kraken", "--exchange-url", "binance:a=b"],
            "expected ID:PATH=URL",
        ),
        (
            ["--source", "exchanges", "--exchange", "kraken", "--exchange-option", "kraken:a={"],
            "expected ID:KEY=JSON",
        ),
        (
            ["--source", "exchanges", "--exchange", "kraken", "--exchange-option", "kraken:a"],
            "expected ID:KEY=JSON",
        ),
        (
            ["--source", "exchanges", "--exchange", "kraken", "--asset", "PEPE"],
            "expected SYMBOL=ID",
        ),
        (
            ["--source", "exchanges", "--exchange", "kraken", "--quote", "EUR"],
            "no USD value for the quote EUR",
        ),
        (
            ["--source", "exchanges", "--exchange", "kraken", "--workers", "2"],
            "--source exchanges runs in one process",
        ),
        (["--source", "nope"], "expected sim, exchanges, evm, replay:FILE or relay, not 'nope'"),
        (["--source", "relay", "--source", "evm"], "feed every channel: name no other source"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code == click.UsageError.exit_code, result.output
    assert message in result.output
