"""The client session: requests and answers, ends of connections, reconnects, restore plans.

Plain values only: no sockets, no event loop, no sleeps.
"""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest

from cmcstream import exceptions as exc
from cmcstream.client.backoff import Backoff
from cmcstream.client.frames import Envelope, FrameDecoder
from cmcstream.client.items import split
from cmcstream.client.session import (
    SILENCE,
    Answer,
    ClientSession,
    GiveUp,
    Notice,
    Refused,
    Retry,
    Verdict,
    restore_plan,
)
from cmcstream.protocol.codes import CLOSE_CODES, ERRORS, ErrorCode

DECODER = FrameDecoder()


def env(**fields: Any) -> Envelope:
    decoded = DECODER.envelope(json.dumps(fields))
    assert decoded is not None
    return decoded


def status(code: ErrorCode, detail: str = "") -> dict[str, Any]:
    spec = ERRORS[code]
    return {
        "error_code": spec.wire_code,
        "error_message": spec.message,
        "error_detail": detail,
        "category": str(spec.category),
    }


def session(**options: Any) -> ClientSession[str]:
    return ClientSession(0, itertools.count(1).__next__, rng=random.Random(7), **options)


# -- requests and answers --------------------------------------------------------------------


def test_each_request_gets_a_fresh_id_and_its_frame_carries_it() -> None:
    s = session()
    rid1, frame1 = s.request({"method": "subscribe", "channel": "c", "params": {"x": [1]}}, "a")
    rid2, frame2 = s.request({"method": "unsubscribe_all"}, "b")
    assert (rid1, rid2) == (1, 2)
    assert json.loads(frame1) == {
        "id": 1,
        "method": "subscribe",
        "channel": "c",
        "params": {"x": [1]},
    }
    assert json.loads(frame2) == {"id": 2, "method": "unsubscribe_all"}
    assert json.loads(s.ping()) == {"id": 3, "method": "ping"}
    assert s.waiting == 2  # a ping waits for nothing


def test_an_ack_answers_its_request_after_running_its_hook_and_updates_the_counts() -> None:
    s = session()
    seen: list[str] = []
    s.request({"method": "subscribe"}, "first", lambda e: seen.append(f"hook {e.sub_count}"))
    s.request({"method": "subscribe"}, "second")
    outcome = s.receive(env(type="ack", id=1, code=0, sub_count=3, sub_limit=50))
    assert isinstance(outcome, Answer)
    assert outcome.waiter == "first"
    assert isinstance(outcome.result, Envelope)
    assert outcome.result.sub_count == 3
    assert seen == ["hook 3"]
    assert (s.sub_count, s.sub_limit) == (3, 50)
    # Answered once: a repeated ack answers no one and runs no hook again.
    assert s.receive(env(type="ack", id=1, sub_count=4)) is None
    assert seen == ["hook 3"]
    assert s.sub_count == 4
    assert s.waiting == 1


def test_string_ids_match_too() -> None:
    s: ClientSession[str] = ClientSession(0, iter(["a1", "a2"]).__next__)  # type: ignore[arg-type]
    s.request({"method": "subscribe"}, "w")
    outcome = s.receive(env(type="ack", id="a1", sub_count=1))
    assert isinstance(outcome, Answer)
    assert outcome.waiter == "w"


def test_an_error_frame_answers_its_request_with_the_typed_error() -> None:
    s = session()
    s.request({"method": "subscribe"}, "w")
    outcome = s.receive(env(type="error", id=1, status=status(ErrorCode.INVALID_PARAM, "bad")))
    assert isinstance(outcome, Answer)
    assert isinstance(outcome.result, exc.InvalidParams)
    assert outcome.result.error_code == 2402
    assert outcome.result.detail == "bad"
    assert s.waiting == 0


def test_error_frames_for_no_request_are_refusals_when_auth_and_notices_otherwise() -> None:
    s = session()
    refused = s.receive(env(type="error", status=status(ErrorCode.CREDITS_EXHAUSTED)))
    assert isinstance(refused, Refused)
    assert isinstance(refused.error, exc.CreditsExhausted)
    notice = s.receive(env(type="error", id=99, status=status(ErrorCode.INTERNAL)))
    assert isinstance(notice, Notice)
    assert isinstance(notice.error, exc.ServerError)


def test_pongs_welcomes_and_unknown_types_answer_no_one() -> None:
    s = session()
    s.request({"method": "ping"}, "w")
    for frame in (env(type="pong", id=1), env(type="welcome"), env(type="novel", id=1)):
        assert s.receive(frame) is None
    assert s.waiting == 1


def test_drain_hands_back_every_waiter_and_their_answers_then_go_nowhere() -> None:
    s = session()
    hooks: list[int] = []
    s.request({"method": "subscribe"}, "a", lambda e: hooks.append(1))
    s.request({"method": "subscribe"}, "b")
    assert s.drain() == ["a", "b"]
    assert s.waiting == 0
    assert s.receive(env(type="ack", id=1, sub_count=1)) is None
    assert hooks == []
    s.forget(2)  # forgetting what is gone is harmless


# -- the welcome -------------------------------------------------------------------------------


def test_the_welcome_sets_the_ping_interval_unless_overridden() -> None:
    assert session().welcome(env(type="welcome", ping_interval_ms=2500)) == 2.5
    assert session().welcome(env(type="welcome")) == 10.0
    assert session(ping_interval_s=0.2).welcome(env(type="welcome", ping_interval_ms=2500)) == 0.2
    assert session().welcome(env(type="pong")) is None


# -- how a connection ends ----------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(CLOSE_CODES))
def test_close_codes_are_classified_by_the_protocols_table(code: int) -> None:
    spec = CLOSE_CODES[code]  # type: ignore[index]
    ending = session().closed(int(code), spec.reason)
    assert ending.code == code
    assert ending.reason == f"closed {int(code)} ({spec.reason})"
    if spec.fatal:
        assert ending.verdict is Verdict.FATAL
        assert isinstance(ending.error, exc.AuthError)
        assert ending.error.close_code == code
        assert ending.error.close_reason == spec.reason
    elif spec.error is ErrorCode.CONNECTION_LIMIT:
        assert (ending.verdict, ending.error) == (Verdict.LIMITED, None)
    else:
        assert (ending.verdict, ending.error) == (Verdict.RETRY, None)


def test_fatal_closes_carry_their_typed_errors() -> None:
    kinds = {4100: exc.InvalidKey, 4101: exc.KeyDisabled, 4102: exc.PlanNotSupported}
    for code, kind in kinds.items():
        assert type(session().closed(code, "").error) is kind


def test_a_drop_without_a_close_frame_is_1006_and_retried() -> None:
    ending = session().closed(None)
    assert (ending.code, ending.reason, ending.verdict) == (
        1006,
        "closed 1006 (connection lost)",
        Verdict.RETRY,
    )
    assert session().closed(1011, "").reason == "closed 1011"
    assert SILENCE.verdict is Verdict.RETRY
    assert "silence" in SILENCE.reason


def test_an_auth_error_before_the_close_names_the_cause_and_makes_it_final() -> None:
    s = session()
    # error 1002 then close 4100: MissingKey says more than InvalidKey.
    assert s.welcome(env(type="error", status=status(ErrorCode.KEY_MISSING))) is None
    ending = s.closed(4100, "API key invalid")
    assert ending.verdict is Verdict.FATAL
    assert type(ending.error) is exc.MissingKey
    # error 1010 (for no request) then close 1000: final although 1000 is not.
    s.connected()
    s.welcome(env(type="welcome"))
    s.receive(env(type="error", status=status(ErrorCode.CREDITS_EXHAUSTED)))
    ending = s.closed(1000, "Normal close")
    assert ending.verdict is Verdict.FATAL
    assert type(ending.error) is exc.CreditsExhausted


def test_error_2304_before_the_close_is_the_longer_backoff() -> None:
    s = session()
    s.welcome(env(type="error", status=status(ErrorCode.CONNECTION_LIMIT)))
    ending = s.closed(1000, "")
    assert (ending.verdict, ending.code, ending.reason) == (Verdict.LIMITED, 4004, "closed 4004")


def test_an_error_frame_is_forgotten_on_the_next_connection_and_after_a_welcome() -> None:
    s = session()
    s.welcome(env(type="error", status=status(ErrorCode.KEY_MISSING)))
    s.connected()
    assert s.closed(1011, "").verdict is Verdict.RETRY
    s.welcome(env(type="error", status=status(ErrorCode.CONNECTION_LIMIT)))
    s.welcome(env(type="welcome"))
    assert s.closed(1011, "").verdict is Verdict.RETRY


def test_a_handshake_refused_with_401_or_403_is_an_invalid_key() -> None:
    for code in (401, 403):
        ending = ClientSession.rejected(code, "InvalidStatus: nope")
        assert ending.verdict is Verdict.FATAL
        assert type(ending.error) is exc.InvalidKey
    ending = ClientSession.rejected(503, "InvalidStatus: busy")
    assert (ending.verdict, ending.error, ending.reason) == (
        Verdict.RETRY,
        None,
        "InvalidStatus: busy",
    )
    assert ClientSession.failed("OSError: refused").verdict is Verdict.RETRY


# -- what comes next ---------------------------------------------------------------------------

BACKOFF = Backoff(
    base_s=1.0, cap_s=8.0, limited_base_s=10.0, limited_cap_s=40.0, reset_after_s=30.0
)


def test_retries_back_off_exponentially_within_the_bound() -> None:
    s = session(backoff=BACKOFF)
    retry = s.closed(1011, "")
    bounds = [1.0, 2.0, 4.0, 8.0, 8.0]
    for bound in bounds:
        step = s.next_step(retry, opened=True, uptime=0.1)
        assert isinstance(step, Retry)
        assert 0.0 <= step.delay <= bound


def test_4004_backs_off_longer() -> None:
    delays = []
    for seed in range(20):
        s = ClientSession(0, itertools.count().__next__, backoff=BACKOFF, rng=random.Random(seed))
        step = s.next_step(s.closed(4004, "Connection limit"), opened=True, uptime=0.0)
        assert isinstance(step, Retry)
        assert step.delay <= 10.0
        delays.append(step.delay)
    assert max(delays) > 1.0  # beyond the ordinary first bound


def test_a_connection_that_stayed_up_resets_the_attempts() -> None:
    s = session(backoff=Backoff(base_s=1.0, cap_s=64.0, max_attempts=2))
    retry = s.closed(1011, "")
    assert isinstance(s.next_step(retry, opened=True, uptime=0.0), Retry)
    assert isinstance(s.next_step(retry, opened=True, uptime=0.0), Retry)
    assert isinstance(s.next_step(retry, opened=True, uptime=31.0), Retry)  # counter reset
    assert isinstance(s.next_step(retry, opened=True, uptime=0.0), Retry)
    gave_up = s.next_step(retry, opened=True, uptime=0.0)
    assert isinstance(gave_up, GiveUp)
    assert type(gave_up.error) is exc.ConnectionLost
    assert str(gave_up.error) == "connection 0 lost: closed 1011"


def test_fatal_ends_a_failed_first_connection_and_no_reconnect_give_up() -> None:
    s = session()
    fatal = s.next_step(s.closed(4101, "API key disabled"), opened=True, uptime=0.0)
    assert isinstance(fatal, GiveUp)
    assert type(fatal.error) is exc.KeyDisabled
    first = s.next_step(s.closed(4004, ""), opened=False, uptime=0.0)
    assert isinstance(first, GiveUp)
    assert type(first.error) is exc.ConnectionLimited
    off = session(reconnect=False)
    step = off.next_step(off.closed(1011, ""), opened=True, uptime=0.0)
    assert isinstance(step, GiveUp)
    assert type(step.error) is exc.ConnectionLost


# -- restoring ---------------------------------------------------------------------------------


def test_the_restore_plan_sends_one_subscribe_per_channel_and_scalars() -> None:
    items = [
        *split("market@crypto_latest_price", {"crypto_ids": [1, 1027]}),
        *split(
            "onchain@kline", {"platform_id": 14, "address": ["0xA" + "0" * 39], "interval": "1m"}
        ),
        *split("market@crypto_latest_price", {"crypto_ids": [5426]}),
        *split(
            "onchain@kline", {"platform_id": 14, "address": ["0xb" + "0" * 39], "interval": "5m"}
        ),
    ]
    plan = restore_plan(items)
    assert [step.message for step in plan] == [
        {
            "method": "subscribe",
            "channel": "market@crypto_latest_price",
            "params": {"crypto_ids": [1, 1027, 5426]},
        },
        {
            "method": "subscribe",
            "channel": "onchain@kline",
            "params": {"interval": "1m", "platform_id": 14, "address": ["0xa" + "0" * 39]},
        },
        {
            "method": "subscribe",
            "channel": "onchain@kline",
            "params": {"interval": "5m", "platform_id": 14, "address": ["0xb" + "0" * 39]},
        },
    ]
    assert [len(step.members) for step in plan] == [3, 1, 1]
    assert [item for step in plan for item in step.members] == [
        items[0],
        items[1],
        items[3],
        items[2],
        items[4],
    ]
    assert restore_plan([]) == []
