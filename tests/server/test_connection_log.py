"""One log line per connection opened, refused and closed: key id (never the key), plan,
remote address, duration, close code; as text, or as JSON lines (``--log-json``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from cmcstream.logs import CONNECTIONS, TEXT_FORMAT, JsonFormatter, setup_logging
from cmcstream.server.store import key_id
from cmcstream.testing.server import RunningNode
from tests.server.conftest import closed_with, dial, welcomed


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    connections_level = logging.getLogger(CONNECTIONS).level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger(CONNECTIONS).setLevel(connections_level)


async def test_open_refused_and_close_lines(
    node: RunningNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=CONNECTIONS)
    async with dial(node.url, node.demo_key) as ws:
        await welcomed(ws)
    async with dial(node.url, "not-a-key") as refused:
        assert (await closed_with(refused))[0] == 4100
    records = [r for r in caplog.records if r.name == CONNECTIONS]
    fields = [r.fields for r in records]  # type: ignore[attr-defined]
    assert [f["event"] for f in fields] == ["open", "close", "refused"]
    opened, closed, refusal = fields
    kid = key_id(node.demo_key)
    assert opened["key_id"] == closed["key_id"] == kid
    assert opened["plan"] == closed["plan"] == "startup"
    assert opened["remote"].startswith("127.0.0.1:")
    assert closed["code"] == 1000
    assert 0 <= closed["duration_s"] < 10
    assert refusal == {
        "event": "refused",
        "key_id": key_id("not-a-key"),
        "remote": refusal["remote"],
        "code": 4100,
    }

    text = logging.Formatter(TEXT_FORMAT)
    line = text.format(records[1])
    assert f"close key_id={kid} plan=startup remote=127.0.0.1:" in line
    assert "code=1000" in line
    document = json.loads(JsonFormatter().format(records[1]))
    assert document["level"] == "info"
    assert document["logger"] == CONNECTIONS
    assert document["ts"].endswith("Z")
    assert {k: document[k] for k in ("event", "key_id", "plan", "code")} == {
        "event": "close",
        "key_id": kid,
        "plan": "startup",
        "code": 1000,
    }
    for record in records:  # the secret is in no line, in either format
        assert node.demo_key not in text.format(record)
        assert node.demo_key not in JsonFormatter().format(record)


@pytest.mark.usefixtures("restore_logging")
def test_setup_picks_the_format_and_keeps_connection_lines_at_any_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("error", json=True)
    logging.getLogger(CONNECTIONS).info("open", extra={"fields": {"event": "open"}})
    logging.getLogger("cmcstream.other").warning("hidden at level error")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("cmcstream.other").exception("failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["msg"] for line in lines] == ["open", "failed"]
    assert lines[0]["event"] == "open"
    assert "ValueError: boom" in lines[1]["exc"]

    setup_logging("warning", connections=False)
    logging.getLogger(CONNECTIONS).info("open")
    logging.getLogger("cmcstream.other").warning("shown")
    err = capsys.readouterr().err
    assert "open" not in err
    assert "WARNING cmcstream.other: shown" in err
