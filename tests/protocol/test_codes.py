from __future__ import annotations

from typing import Any

from cmcstream.protocol.codes import CLOSE_CODES, ERRORS, CloseCode, ErrorCode


def test_error_table_matches_the_spec(channels_json: Any) -> None:
    documented = {e["code"]: e for e in channels_json["error_codes"]}
    assert set(documented) == {int(c) for c in ERRORS}
    for code, spec in ERRORS.items():
        row = documented[int(code)]
        assert spec.message == row["error_message"]
        assert spec.category.value == row["category"]
        assert spec.wire_code == row["wire_error_code"]
        assert (spec.close_code and int(spec.close_code)) == row["close_code"]


def test_close_table_matches_the_spec(channels_json: Any) -> None:
    documented = {c["code"]: c for c in channels_json["close_codes"]}
    assert set(documented) == {int(c) for c in CLOSE_CODES}
    for code, spec in CLOSE_CODES.items():
        row = documented[int(code)]
        assert spec.reason == row["reason"]
        assert spec.fatal == row["fatal_for_client"]
        assert (spec.error and int(spec.error)) == row["maps_to_error"]


def test_every_code_has_a_row() -> None:
    assert set(ErrorCode) == set(ERRORS)
    assert set(CloseCode) == set(CLOSE_CODES)
    assert ERRORS[ErrorCode.MISSING_PARAM].wire_code == "2401"
