"""The shape of the package: which layer may import which, and no import cycles.

Data flows one way (DESIGN.md): sources → engine → feed → bus → gateway. The
feed and the gateway meet only at the bus, so either runs without the other
(``cmcstream feed``, ``cmcstream gateway``); ``app.py`` and the CLI compose them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_layering import ROOT, imports


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    path = ROOT.parent / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path: Path) -> set[str]:
    """The cmcstream modules ``path`` imports (a ``from pkg import sub`` counts as ``pkg.sub``)."""
    found = imports(path, names=True)
    found |= {name.rpartition(".")[0] for name in found if not is_module(name)}
    return {name for name in found if is_module(name) and name.startswith("cmcstream")}


GRAPH = {module_name(p): imported_modules(p) for p in sorted(ROOT.rglob("*.py"))}


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("cmcstream.feed", ("cmcstream.server", "cmcstream.client", "cmcstream.app")),
        (
            "cmcstream.server",
            ("cmcstream.feed", "cmcstream.sources", "cmcstream.engine", "cmcstream.app"),
        ),
        (
            "cmcstream.bus",
            ("cmcstream.server", "cmcstream.feed", "cmcstream.engine", "cmcstream.sources"),
        ),
        ("cmcstream.sources", ("cmcstream.server", "cmcstream.feed", "cmcstream.bus")),
        ("cmcstream.config", ("cmcstream.server", "cmcstream.feed", "cmcstream.bus")),
    ],
)
def test_layers_import_only_downwards(layer: str, forbidden: tuple[str, ...]) -> None:
    modules = [m for m in GRAPH if m == layer or m.startswith(layer + ".")]
    assert modules
    for module in modules:
        for name in GRAPH[module]:
            assert not any(name == bad or name.startswith(bad + ".") for bad in forbidden), (
                f"{module} imports {name}"
            )


def test_no_import_cycles() -> None:
    # Tarjan's strongly connected components over every import, TYPE_CHECKING ones included.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in GRAPH.get(module, ()):
            if target not in GRAPH:
                continue
            # A package's __init__ re-exporting its own modules is not a cycle of layers.
            if module.startswith(target + "."):
                continue
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert cycles == []
