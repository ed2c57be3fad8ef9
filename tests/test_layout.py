"""The house's layout: no import cycle, and no import running back up the data flow.

photo → views → BIQA → optimizer → JPEG check → metadata → outbox is the core; the rooms (executors,
folder runs, the daemon, the web page) call it and never the reverse; the CLI calls the rooms. Read
from the source with ``ast``, so a lazy import inside a function counts as much as a top one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pixcamd"

# The core, in data-flow order: a module may import its own stage and earlier ones only.
CORE_STAGES = (
    (
        "pixcamd",
        "pixcamd.errors",
        "pixcamd.allocator",
        "pixcamd.devices",
        "pixcamd.report",
        "pixcamd.defaults",  # the names and defaults a person writes: no torch
    ),
    ("pixcamd.metadata",),  # read with the photo, written with the copy
    ("pixcamd.colour", "pixcamd.photo"),  # colours as platforms serve them: sRGB
    ("pixcamd.jpeg", "pixcamd.platforms", "pixcamd.platform_specs"),  # what they do; as written
    ("pixcamd.views", "pixcamd.pipeline_views", "pixcamd.roaming"),
    ("pixcamd.models", "pixcamd.budget"),  # the BIQA; how far each pixel may move
    ("pixcamd.scoring", "pixcamd.view_loop", "pixcamd.optimizer"),
    ("pixcamd.enhance", "pixcamd.check", "pixcamd.settings"),
    ("pixcamd.search", "pixcamd.protect"),
    ("pixcamd.output", "pixcamd.job", "pixcamd.fetch"),
)
ROOMS = (
    "pixcamd.executors",
    "pixcamd.folder_plan",
    "pixcamd.folder_offers",
    "pixcamd.folders",
    "pixcamd.daemon",
    "pixcamd.web",
)
SHELL = (
    "pixcamd.commands",
    "pixcamd.cli",
    "pixcamd.launch",
    "pixcamd.streams",
    "pixcamd.early_signals",
    "pixcamd.__main__",
)
# The running daemon, as opposed to its record (config, ledger, events, decisions) that the web
# page and folder runs share: only the shell starts it.
RUNNING_DAEMON = (
    "pixcamd.daemon.service",
    "pixcamd.daemon.intake",
    "pixcamd.daemon.worker",
    "pixcamd.daemon.cluster",
    "pixcamd.daemon.reload",
    "pixcamd.daemon.timers",
)


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    files = {_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}: relative import"
                if not (node.module or "").startswith("pixcamd"):
                    continue
                for alias in node.names:  # `from pixcamd.daemon import ledger` is the module
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in files else node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("pixcamd")}
        graph[name] = deps - {name}
    return graph


GRAPH = _graph()


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _stage(name: str) -> int | None:
    for i, stage in enumerate(CORE_STAGES):
        # Stage 0 names the package's own __init__ ("pixcamd"), a prefix of every module: it
        # places that file and the five beside it only, never a whole subtree.
        if name in stage or (i and _within(name, stage)):
            return i
    return None


def test_every_module_is_placed():
    unplaced = [m for m in GRAPH if _stage(m) is None and not _within(m, ROOMS + SHELL)]
    assert not unplaced, f"place these in tests/test_layout.py: {unplaced}"


def test_no_import_cycle():
    # Tarjan's strongly connected components: any of more than one module is a cycle.
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _stage(m) is not None))
def test_the_core_imports_nothing_further_down_the_flow(module):
    stage = _stage(module)
    later = {d for d in GRAPH[module] if _stage(d) is None or _stage(d) > stage}
    assert not later, f"{module} (stage {stage}) imports {sorted(later)}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _within(m, ROOMS)))
def test_rooms_never_call_the_shell_or_the_running_daemon(module):
    bad = {d for d in GRAPH[module] if _within(d, SHELL)}
    if not _within(module, ("pixcamd.daemon",)):
        bad |= {d for d in GRAPH[module] if _within(d, RUNNING_DAEMON)}
    if _within(module, ("pixcamd.executors",)):  # an executor knows photos, not outboxes
        bad |= {
            d for d in GRAPH[module] if _within(d, ROOMS) and not _within(d, ("pixcamd.executors",))
        }
    assert not bad, f"{module} imports {sorted(bad)}"


def test_the_graph_is_read():
    # The checks above are vacuous on an empty or misread graph: a few known edges must be there.
    assert "pixcamd.photo" in GRAPH["pixcamd.jpeg"]
    assert "pixcamd.daemon.ledger" in GRAPH["pixcamd.folders"]
    assert "pixcamd.protect" in GRAPH["pixcamd.job"]
    assert len(GRAPH) > 40
