"""The admin HTTP API: keys and their usage, for operators, behind a bearer token.

It listens on a port of its own (the WebSocket port's HTTP parser takes only
bodiless GETs), 127.0.0.1 by default, and runs on the gateway's event loop
under uvicorn. FastAPI describes it at ``/openapi.json`` (``/docs`` renders it).

Keys are named by their id (:func:`~cmcstream.server.store.key_id`), never by
the secret: the secret is in the answer to ``POST /keys`` and nowhere else, so
neither listings nor URLs (which end up in proxies' logs) carry it.

The store's calls block (SQLite, or PostgreSQL's blocking face); FastAPI runs
the endpoints, plain functions, in its worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
import socket
import time
from typing import Annotated, Any, Final

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from cmcstream.protocol.billing import MILLI
from cmcstream.protocol.plans import DEFAULT_PLAN
from cmcstream.server.store import KeyRecord, KeyStatus, Store, Usage, key_id, month_of
from cmcstream.version import __version__

__all__ = ["AdminServer", "KeyCreated", "KeyOut", "UsageOut", "make_admin_app"]

_MONTH: Final = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
# At module level: FastAPI resolves the endpoints' (string) annotations in this namespace.
_BEARER: Final = HTTPBearer(auto_error=False)


class UsageOut(BaseModel):
    """A key's usage in one calendar month (UTC)."""

    month: str = Field(examples=["2026-05"])
    credits: float = Field(description="Credits spent (milli / 1000).")
    milli: int = Field(description="Credits spent, in exact thousandths.")
    messages: int = Field(description="data pushes delivered.")


class KeyOut(BaseModel):
    """A key as listings show it: by its id, without the secret."""

    id: str = Field(description="The first 16 hex digits of the key's SHA-256.")
    name: str
    plan: str
    status: KeyStatus
    credits: float | None = Field(description="Monthly credits set for this key; null: the plan's.")
    monthly_credits: float
    created_ms: int
    usage: UsageOut = Field(description="This month's usage.")


class KeyCreated(KeyOut):
    """A new key, with its secret: the only answer that carries it."""

    key: str


class KeyIn(BaseModel):
    plan: str = DEFAULT_PLAN
    status: KeyStatus = KeyStatus.ACTIVE
    credits: float | None = None
    name: str = ""


def _usage_out(usage: Usage) -> UsageOut:
    return UsageOut(
        month=usage.month, credits=usage.milli / MILLI, milli=usage.milli, messages=usage.messages
    )


def _key_out(record: KeyRecord, usage: Usage) -> dict[str, Any]:
    return {
        "id": key_id(record.key),
        "name": record.name,
        "plan": record.plan,
        "status": record.status,
        "credits": record.credits,
        "monthly_credits": record.monthly_credits,
        "created_ms": record.created_ms,
        "usage": _usage_out(usage),
    }


def _this_month() -> str:
    return month_of(time.time_ns() // 1_000_000)


def make_admin_app(store: Store, token: str) -> FastAPI:
    """The admin API over ``store``, for requests bearing ``token``."""
    if not token:
        raise ValueError("the admin API needs a token")
    expected = token.encode()

    def authorized(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> None:
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid admin token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    app = FastAPI(
        title="cmcstream admin API",
        version=__version__,
        description="API keys and their usage. Every call needs `Authorization: Bearer <token>`.",
        dependencies=[Depends(authorized)],
    )

    def find(kid: str) -> KeyRecord:
        # Keys are stored by their secret: the id is matched over the list.
        for record in store.list():
            if key_id(record.key) == kid:
                return record
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such key: {kid}")

    @app.get("/keys", response_model=list[KeyOut], tags=["keys"])
    def list_keys() -> list[dict[str, Any]]:
        """Every key, oldest first, with this month's usage."""
        month = _this_month()
        return [_key_out(r, store.usage(r.key, month)) for r in store.list()]

    @app.post(
        "/keys", response_model=KeyCreated, status_code=status.HTTP_201_CREATED, tags=["keys"]
    )
    def create_key(body: KeyIn) -> dict[str, Any]:
        """Create a key; the answer is the only place its secret is shown."""
        try:
            record = store.create(
                plan=body.plan, status=body.status, credits=body.credits, name=body.name
            )
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        return {**_key_out(record, Usage(_this_month())), "key": record.key}

    @app.get("/keys/{kid}", response_model=KeyOut, tags=["keys"])
    def show_key(kid: str) -> dict[str, Any]:
        """One key and its usage this month."""
        record = find(kid)
        return _key_out(record, store.usage(record.key, _this_month()))

    def set_status(kid: str, new: KeyStatus) -> dict[str, Any]:
        record = find(kid)
        store.set_status(record.key, new)
        return show_key(kid)

    @app.post("/keys/{kid}/disable", response_model=KeyOut, tags=["keys"])
    def disable_key(kid: str) -> dict[str, Any]:
        """Disable a key: connections get 4101; open ones are closed within seconds."""
        return set_status(kid, KeyStatus.DISABLED)

    @app.post("/keys/{kid}/enable", response_model=KeyOut, tags=["keys"])
    def enable_key(kid: str) -> dict[str, Any]:
        """Make a key active again."""
        return set_status(kid, KeyStatus.ACTIVE)

    @app.delete("/keys/{kid}", status_code=status.HTTP_204_NO_CONTENT, tags=["keys"])
    def delete_key(kid: str) -> Response:
        """Delete a key and its usage."""
        store.delete(find(kid).key)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @app.get("/keys/{kid}/usage", response_model=UsageOut, tags=["usage"])
    def key_usage(
        kid: str,
        month: Annotated[
            str | None, Query(description="YYYY-MM (UTC); default: this month.")
        ] = None,
    ) -> UsageOut:
        """A key's usage in one month (the store keeps usage by month)."""
        if month is not None and not _MONTH.match(month):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "month is YYYY-MM")
        record = find(kid)
        return _usage_out(store.usage(record.key, month or _this_month()))

    return app


class AdminServer:
    """The admin API served by uvicorn on the running event loop.

    Args:
        store: the key store (not closed here).
        token: the bearer token every request must carry.
        host: interface to listen on.
        port: TCP port; 0 picks a free one.
    """

    def __init__(self, store: Store, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(
            make_admin_app(store, token),
            log_config=None,  # the process's own logging
            access_log=False,
            lifespan="off",
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._host = host
        self._port = port
        self._socket: socket.socket | None = None
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen; raises OSError when the port is taken."""
        self._socket = socket.create_server((self._host, self._port))
        config = self._server.config
        try:
            config.load()
            # What serve() does but take over SIGINT and SIGTERM, which the node handles.
            self._server.lifespan = config.lifespan_class(config)
            await self._server.startup(sockets=[self._socket])
        except BaseException:
            self._socket.close()
            raise
        self._loop_task = asyncio.get_running_loop().create_task(self._server.main_loop())

    @property
    def port(self) -> int:
        assert self._socket is not None, "not started"
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def aclose(self) -> None:
        if self._loop_task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._loop_task
        await self._server.shutdown(sockets=[self._socket] if self._socket else None)
        self._loop_task = None
