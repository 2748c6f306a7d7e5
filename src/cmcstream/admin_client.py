"""The ``keys`` commands' way to a remote server: its admin HTTP API (``serve --admin-port``).

Answers come back as the same :class:`KeyRecord` and :class:`Usage` a local
store gives, so the commands print them alike; a listed record's ``key`` is
the key's id, as the API never lists secrets.
"""

from __future__ import annotations

import re
from types import TracebackType
from typing import Any, Final

import httpx

from cmcstream.server.store import KeyRecord, KeyStatus, Usage, key_id

__all__ = ["AdminClient", "AdminError", "id_of"]

_ID: Final = re.compile(r"^[0-9a-f]{16}$")


class AdminError(Exception):
    """The admin API could not be reached, refused the token, or answered with an error."""


def id_of(key_or_id: str) -> str:
    """The id the API names a key by, from the key itself or its id."""
    return key_or_id if _ID.match(key_or_id) else key_id(key_or_id)


class AdminClient:
    """A blocking client of the admin API at ``url`` with bearer ``token``."""

    def __init__(self, url: str, token: str, timeout_s: float = 10.0) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
        )

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """The response, or None for 404; anything else but success raises AdminError."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise AdminError(
                f"the admin API at {self._http.base_url} does not answer ({exc})"
            ) from None
        if response.status_code == 404:
            return None
        if response.status_code == 401:
            raise AdminError("the admin API refused the token (--admin-token)")
        if response.is_error:
            detail = response.json().get("detail") if response.content else None
            raise AdminError(f"the admin API answered {response.status_code}: {detail}")
        return response

    def create(self, *, plan: str, status: str, credits: float | None, name: str) -> KeyRecord:
        body = {"plan": plan, "status": status, "credits": credits, "name": name}
        response = self._call("POST", "/keys", json=body)
        assert response is not None
        document = response.json()
        return _record(document, document["key"])

    def list(self) -> list[tuple[KeyRecord, Usage]]:
        response = self._call("GET", "/keys")
        assert response is not None
        return [(_record(d, d["id"]), _usage(d["usage"])) for d in response.json()]

    def show(self, key_or_id: str) -> tuple[KeyRecord, Usage] | None:
        response = self._call("GET", f"/keys/{id_of(key_or_id)}")
        if response is None:
            return None
        document = response.json()
        return _record(document, document["id"]), _usage(document["usage"])

    def set_status(self, key_or_id: str, status: KeyStatus) -> bool:
        action = {KeyStatus.ACTIVE: "enable", KeyStatus.DISABLED: "disable"}[status]
        return self._call("POST", f"/keys/{id_of(key_or_id)}/{action}") is not None

    def delete(self, key_or_id: str) -> bool:
        return self._call("DELETE", f"/keys/{id_of(key_or_id)}") is not None


def _record(document: dict[str, Any], key: str) -> KeyRecord:
    return KeyRecord(
        key=key,
        name=document["name"],
        plan=document["plan"],
        status=KeyStatus(document["status"]),
        credits=document["credits"],
        created_ms=int(document["created_ms"]),
    )


def _usage(document: dict[str, Any]) -> Usage:
    return Usage(month=document["month"], milli=document["milli"], messages=document["messages"])
