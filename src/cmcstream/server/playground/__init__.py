"""The playground: a page on ``GET /`` to subscribe to any channel and watch its pushes.

Plain HTML, CSS and JavaScript shipped in the package (``static/``), with a
vendored chart library; nothing is built. ``/playground/choices.json`` tells
the page the channels and their params, and what there is to pick: the
market's assets and the DEX world's platforms, tokens, pools and wallets.
"""

from __future__ import annotations

import http
from collections.abc import Awaitable, Callable
from importlib import resources
from importlib.abc import Traversable

import msgspec
from websockets.http11 import Response

from cmcstream.protocol.channels import CHANNELS, ChannelSpec
from cmcstream.server.http import response

__all__ = ["PREFIX", "Playground"]

PREFIX = "/playground/"
CHOICES = PREFIX + "choices.json"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
_TEXT = "text/plain; charset=utf-8"


# A new release ships new files under the same names.
_NO_CACHE = ("Cache-Control", "no-cache")


def _channel(spec: ChannelSpec) -> dict[str, object]:
    return {
        "name": spec.name,
        "holders_only": spec.holders_only,
        "params": [
            {"name": p.name, "kind": p.kind.value, "choices": list(p.choices)} for p in spec.params
        ],
    }


def _files(root: Traversable, prefix: str = "") -> dict[str, Traversable]:
    """Every file under ``root`` by its path relative to it."""
    found: dict[str, Traversable] = {}
    for entry in root.iterdir():
        if entry.is_dir():
            found.update(_files(entry, f"{prefix}{entry.name}/"))
        elif not entry.name.startswith("."):
            found[prefix + entry.name] = entry
    return found


class Playground:
    """The playground's routes.

    Args:
        choices: what there is to pick (an object msgspec encodes), awaited
            per request of ``choices.json``; ``None`` offers the channels only.
    """

    def __init__(self, choices: Callable[[], Awaitable[object]] | None = None) -> None:
        self._choices = choices
        self._channels = [_channel(spec) for spec in CHANNELS]
        self._static: dict[str, Traversable] | None = None
        self._responses: dict[str, Response] = {}

    def route(self, path: str) -> Response | Awaitable[Response] | None:
        """The answer to ``GET path``, or ``None`` when the path is not the playground's."""
        if path == "/":
            return self._file("index.html")
        if path == CHOICES:
            return self._choices_response()
        if path.startswith(PREFIX):
            return self._file(path.removeprefix(PREFIX))
        return None

    def _file(self, name: str) -> Response:
        cached = self._responses.get(name)
        if cached is not None:
            return cached
        if self._static is None:
            self._static = _files(resources.files(__name__) / "static")
        # Only names of shipped files are looked up: no path is ever joined from the request.
        entry = self._static.get(name)
        if entry is None:
            return response(http.HTTPStatus.NOT_FOUND, b"Not Found\n", _TEXT, _NO_CACHE)
        suffix = name[name.rfind(".") :] if "." in name else ""
        answer = response(
            http.HTTPStatus.OK, entry.read_bytes(), _TYPES.get(suffix, _TEXT), _NO_CACHE
        )
        self._responses[name] = answer
        return answer

    async def _choices_response(self) -> Response:
        world = await self._choices() if self._choices is not None else None
        body = msgspec.json.encode({"channels": self._channels, "choices": world})
        return response(http.HTTPStatus.OK, body, "application/json", _NO_CACHE)
