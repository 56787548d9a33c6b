"""Structure rules: the import graph of ``newsletter/`` has no circles; one clock; honest tests.

Every ``import`` and ``from … import`` is read with :mod:`ast`, at module level
and inside functions alike (a lazy import still ties the two modules
together), relative imports resolved against the importing module.  A circle
fails the test and is printed, module by module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "newsletter"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _resolve(importer: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import …`` inside ``importer``."""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _nearest(name: str, known: dict[str, Path]) -> str | None:
    """The module a dotted name lands in (``a.b.func`` → ``a.b``), if it is ours."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    known = _modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for mod, path in known.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = (
                    _resolve(mod, is_package, node.level, node.module)
                    if node.level
                    else node.module or ""
                )
                # `from pkg import sub` is the submodule when there is one, else pkg itself
                targets = [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                hit = _nearest(t, known)
                if hit is not None and hit != mod:
                    graph[mod].add(hit)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component that has one (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        components.append(sorted(comp))
    return [_a_circle(graph, set(c)) for c in components]


def _a_circle(graph: dict[str, set[str]], members: set[str]) -> list[str]:
    """A concrete path a → … → a inside one strongly connected component."""
    start = min(members)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for m in frontier:
            for n in sorted(graph[m] & members):
                if n == start:
                    path = [m]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if n not in previous:
                    previous[n] = m
                    nxt.append(n)
        frontier = nxt
    return sorted(members)  # pragma: no cover (a component always holds a circle)


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert (
        "newsletter.cli.main" in graph
        and "newsletter.core.terminal" in graph["newsletter.reports.cli"]
    )
    # relative imports are resolved, function-level ones included
    assert "newsletter.core.db" in graph["newsletter.cli.ops"]


def test_cycle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_newsletter_imports_have_no_circle() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import circles:\n" + "\n".join(" → ".join(c) for c in cycles)


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph folded onto ``newsletter``'s sub-packages (``newsletter.delivery``…):
    an edge when any module of one imports any module of the other."""

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    folded: dict[str, set[str]] = {}
    for importer, targets in graph.items():
        a = package(importer)
        folded.setdefault(a, set()).update(b for b in map(package, targets) if b != a)
    return folded


def test_package_folding_sees_a_circle_between_packages() -> None:
    graph = {"newsletter.a.x": {"newsletter.b.y"}, "newsletter.b.z": {"newsletter.a.w"}}
    assert find_cycles(package_graph(graph)) == [["newsletter.a", "newsletter.b", "newsletter.a"]]


def test_newsletter_packages_have_no_circle() -> None:
    """No circle between sub-packages either, lazy (function-level) imports counted:
    a circle hidden inside a function still ties the two packages together."""
    cycles = find_cycles(package_graph(import_graph()))
    assert not cycles, "package circles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_the_package_root_holds_only_packages() -> None:
    """``newsletter/`` holds packages, its ``__init__.py`` and the PEP 561 marker: shipped
    files live in ``newsletter/resources`` or in the package that owns them."""
    root = ROOT / PACKAGE
    loose = sorted(
        p.name
        for p in root.iterdir()
        if p.name not in ("__init__.py", "py.typed", "__pycache__")
        and not (p.is_dir() and (p / "__init__.py").is_file())
        # a folder left with only bytecode after a move (a checkout that pulled it) is not code
        and not (p.is_dir() and all(c.suffix == ".pyc" for c in p.rglob("*") if c.is_file()))
    )
    assert loose == [], loose


def test_no_module_is_over_500_lines() -> None:
    """One file per job: a module past 500 lines is doing several (issue 31)."""
    long = sorted(
        f"{p.relative_to(ROOT)}: {n}"
        for p in (ROOT / PACKAGE).rglob("*.py")
        if "migrations" not in p.parts
        and (n := len(p.read_text(encoding="utf-8").splitlines())) > 500
    )
    assert long == [], long


def test_error_lines_get_the_readers_prefix() -> None:
    """No command writes its own English ``error:``: every error line goes through the
    catalogue's prefix (错误：, 錯誤：, or error: for an English reader)."""
    ad_hoc = re.compile(r"""[(\s]f?["'](?:\{\w+\}: )?error: """)
    found = sorted(
        f"{p.relative_to(ROOT)}:{n}"
        for p in (ROOT / PACKAGE).rglob("*.py")
        if p.name != "catalogue.py"  # where the prefixes are defined
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if ad_hoc.search(line)
    )
    assert found == [], found


# -- one clock ---------------------------------------------------------------------

# A call that reads the wall clock for a date or a timestamp. time.monotonic() and
# perf_counter() measure durations and are fine anywhere.
_WALL_CLOCK = re.compile(
    r"\b(?:datetime\.now|datetime\.utcnow|datetime\.today|date\.today|time\.time|time\.time_ns)\s*\("
    r"|\bfunc\.now\s*\(|\bserver_default\s*=\s*func\."
)


def wall_clock_calls(source: str) -> list[int]:
    """Line numbers of direct wall-clock reads in ``source`` (comments ignored)."""
    return [
        n
        for n, line in enumerate(source.splitlines(), 1)
        if _WALL_CLOCK.search(line.split("#", 1)[0])
    ]


def test_the_wall_clock_finder_finds_each_form() -> None:
    for call in (
        "dt.datetime.now(dt.UTC)",
        "datetime.utcnow()",
        "time.time()",
        "dt.date.today()",
        "func.now()",
        "x = time.time_ns()",
    ):
        assert wall_clock_calls(f"a = {call}\n") == [1], call
    assert wall_clock_calls("t = time.monotonic()\n# time.time() in a comment\n") == []


def test_every_now_comes_from_the_clock_module() -> None:
    """The product reads the wall clock only in ``newsletter/core/clock.py``: a second
    notion of "now" is how simulated and real time ended up in one comparison."""
    offenders = []
    for top in ("newsletter", "workers"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if path == ROOT / "newsletter" / "core" / "clock.py" or "migrations" in path.parts:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{n}" for n in wall_clock_calls(path.read_text())
            ]
    assert offenders == [], "read newsletter.core.clock instead: " + ", ".join(offenders)


# -- tests that start real processes say so -------------------------------------------

_STARTS_PROCESSES = re.compile(
    r"\bstart_worker\(|\bstart_beat\(|\bchromium\.launch\(|launch_browser\("
)


def test_tests_that_start_workers_or_a_browser_are_marked_e2e() -> None:
    unmarked = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        text = path.read_text()
        if _STARTS_PROCESSES.search(text) and "pytest.mark.e2e" not in text:
            unmarked.append(str(path.relative_to(ROOT)))
    assert unmarked == [], unmarked


def test_no_assertion_passes_vacuously() -> None:
    """No ``assert … or True`` anywhere in the suite."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path == Path(__file__).resolve():
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"\bor True\b", code) and "assert" in code:
                found.append(f"{path.relative_to(ROOT)}:{n}")
    assert found == [], found
