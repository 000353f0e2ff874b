"""The import graph follows the layers of docs/CONTRACTS.md (read with `ast`, nothing is imported).

1 foundation: errors, physics, io, metrics, data, scenes and other pure helpers
2 networks and solvers: quant (quantizer primitives), models, solvers
3 deploy: deploy.int8 (a package), deploy.packing, deploy.complexity, deploy.weights (int8 execution, packed files,
  counting, the one weights loader)
4 services: zoo, runners, engine, evaluate, bench, plots
5 front ends: app.py, ui/, qsci/cli/, training/ (checkers run as scripts live in scripts/)

A module may import its own layer or lower ones, at module level or inside a function alike.
Library modules (layers 1-4) import at module level; an import inside a function hides a
dependency, so each remaining one is listed in FUNCTION_LEVEL_ALLOWED with its reason, and that
list may only shrink. No module, front ends included, may import inside a function to dodge a
cycle: an import that would close a cycle at module level fails even when listed. Front ends
import inside functions on purpose (`qsci --help` and the app start without torch).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("qsci", "ui", "training", "app")

# module (or package prefix) -> layer; the longest matching entry wins. Package __init__ files
# listed in EXACT_ONLY do not place their submodules: a new module must be placed explicitly.
LAYERS = {
    "qsci": 1, "qsci.errors": 1, "qsci.physics": 1, "qsci.io": 1, "qsci.metrics": 1, "qsci.data": 1,
    "qsci.scenes": 1, "qsci.synthetic": 1, "qsci.tiling": 1, "qsci.published": 1, "qsci.threads": 1,
    "qsci.native": 1,
    "qsci.quant": 2, "qsci.quant.lsq": 2, "qsci.models": 2, "qsci.solvers": 2,
    "qsci.deploy": 3, "qsci.deploy.int8": 3, "qsci.deploy.packing": 3, "qsci.deploy.complexity": 3,
    "qsci.deploy.weights": 3,
    "qsci.zoo": 4, "qsci.runners": 4, "qsci.engine": 4, "qsci.evaluate": 4, "qsci.bench": 4, "qsci.plots": 4,
    "qsci.cli": 5, "qsci.__main__": 5, "app": 5, "ui": 5, "training": 5,
}
EXACT_ONLY = {"qsci", "qsci.quant", "qsci.deploy"}
QUANT_PRIMITIVES = {"__init__.py", "lsq.py"}  # qsci/quant/ holds the quantizer primitives only

# (importer, imported) imports inside functions in layers 1-4 that remain; each with its reason.
# Remove an entry when its import moves to the module top (the test says when one is stale).
FUNCTION_LEVEL_ALLOWED = {
    # io.isolate parses uploads in a child process and builds a scenes.SceneInput there, while scenes
    # reads files through io: a real io <-> scenes knot inside layer 1 (move SceneInput into io).
    ("qsci.io.isolate", "qsci.io.readers"), ("qsci.io.isolate", "qsci.scenes"),
    # lazy by design: listing scenes stays numpy-only; torch (physics), scikit-image/video
    # (synthetic) and the file readers load when a scene is built.
    ("qsci.scenes", "qsci.io"), ("qsci.scenes", "qsci.io.validate"),
    ("qsci.scenes", "qsci.io.inspect"), ("qsci.scenes", "qsci.physics"), ("qsci.scenes", "qsci.synthetic"),
    # lazy by design: the data registry resolves and downloads without loading the file readers.
    ("qsci.data", "qsci.io"),
    # lazy by design: `qsci models` lists methods without torch; the networks, the weights loader
    # (qsci.deploy.weights, every format) and the runners load with the first request.
    ("qsci.zoo", "qsci.data"), ("qsci.zoo", "qsci.models"), ("qsci.zoo", "qsci.deploy.weights"),
    ("qsci.zoo", "qsci.runners"),
    # no cycle: could move to the top.
    ("qsci.engine", "qsci.io.inspect"), ("qsci.evaluate", "qsci.data"), ("qsci.evaluate", "qsci.errors"),
    # bench re-implements the runner loop with its own backend policy (issue 12 finding 4); torch and
    # the networks load only when a benchmark runs.
    ("qsci.bench", "qsci.physics"), ("qsci.bench", "qsci.quant"),
    ("qsci.bench", "qsci.zoo"), ("qsci.bench", "qsci.deploy.int8"), ("qsci.bench", "qsci.models"),
    ("qsci.bench", "qsci.metrics"), ("qsci.bench", "qsci.scenes"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    files = [REPO / "app.py", *[p for root in ROOTS[:-1] for p in sorted((REPO / root).rglob("*.py"))]]
    return {_module_name(p): p for p in files if p.is_file()}


def layer_of(module: str) -> int | None:
    best = None
    for key in LAYERS:
        if module == key or (key not in EXACT_ONLY and module.startswith(key + ".")):
            if best is None or len(key) > len(best):
                best = key
    return None if best is None else LAYERS[best]


def imports_of(module: str, path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function) for every import statement in a file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: from . import x / from ..a import b
                    up = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(up + ([base] if base else []))
                # `from a import b` imports the module a.b when there is one, else names from a
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in child.names]
            else:
                visit(child, inner)
                continue
            found.extend((t, child.lineno, in_function) for t in targets if t.split(".")[0] in ROOTS)

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


def _graph():
    mods = project_modules()
    return mods, {m: imports_of(m, p, set(mods)) for m, p in mods.items()}


def test_every_module_has_a_layer():
    mods = project_modules()
    assert {"qsci.zoo", "qsci.models.checkpoints", "qsci.deploy.int8.convert", "ui.handlers", "app"} <= set(mods)
    unplaced = sorted(m for m in mods if layer_of(m) is None)
    assert unplaced == [], f"place these in LAYERS (and docs/CONTRACTS.md): {unplaced}"


def test_quant_holds_the_quantizer_primitives_only():
    """Execution, packing and counting sit above the networks, in qsci/deploy/ (layer 3)."""
    extra = sorted(p.name for p in (REPO / "qsci" / "quant").glob("*.py") if p.name not in QUANT_PRIMITIVES)
    assert extra == [], f"qsci/quant/ keeps the quantizer primitives only; move these: {extra}"


def test_no_module_imports_a_higher_layer():
    mods, graph = _graph()
    up = [f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)}) at {mods[m].relative_to(REPO)}:{line}"
          for m, edges in graph.items() for t, line, inside in edges
          if layer_of(t) is not None and layer_of(m) is not None and layer_of(t) > layer_of(m)]
    assert up == [], "\n".join(up)


def test_library_layers_import_at_module_level():
    mods, graph = _graph()
    inside = {(m, t): line for m, edges in graph.items() if (layer_of(m) or 5) < 5
              for t, line, in_function in edges if in_function and t != m}
    new = [f"{m} imports {t} inside a function ({mods[m].relative_to(REPO)}:{line})"
           for (m, t), line in sorted(inside.items()) if (m, t) not in FUNCTION_LEVEL_ALLOWED]
    assert new == [], "import at the module top (or list with a reason in FUNCTION_LEVEL_ALLOWED):\n" + "\n".join(new)
    stale = sorted(FUNCTION_LEVEL_ALLOWED - set(inside))
    assert stale == [], f"these imports are gone: remove them from FUNCTION_LEVEL_ALLOWED: {stale}"


def find_cycle(top: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in a module -> imported-modules graph, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(top.get(m, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (cycle := dfs(t)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(top):
        if m not in state and (cycle := dfs(m)):
            return cycle
    return None


def test_no_function_level_import_dodges_a_cycle():
    """An import inside a function whose target reaches the importer at module level is a cycle dodged."""
    mods, graph = _graph()
    top = {m: {t for t, _, inside in edges if not inside and t != m} for m, edges in graph.items()}
    dodges = [f"{m} imports {t} inside a function ({mods[m].relative_to(REPO)}:{line}): "
              + " -> ".join(path) for m, edges in graph.items() for t, line, inside in edges
              if inside and t != m and (path := _path(top, t, m))]
    assert dodges == [], "break the cycle instead (move the shared part down a layer):\n" + "\n".join(dodges)


def _path(top: dict[str, set[str]], src: str, dst: str) -> list[str] | None:
    """A module-level import path src -> ... -> dst, or None."""
    seen, todo = {src}, [[src]]
    while todo:
        path = todo.pop()
        if path[-1] == dst:
            return path
        for t in sorted(top.get(path[-1], ())):
            if t not in seen:
                seen.add(t)
                todo.append(path + [t])
    return None


def test_module_level_imports_have_no_cycle():
    _, graph = _graph()
    top = {m: {t for t, _, inside in edges if not inside and t != m} for m, edges in graph.items()}
    assert len(top) > 50 and "qsci.quant.lsq" in top["qsci.models.blocks"]
    assert find_cycle(top) is None, " -> ".join(find_cycle(top))
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]


def test_the_checks_see_a_violation(tmp_path, monkeypatch):
    """The scanner on a fake tree: upward imports (top or in a function, listed or not), cycles
    dodged inside a function (in a library layer and in a front end) and a deploy module left in
    qsci/quant/ are all found."""
    files = {
        "app.py": "", "qsci/__init__.py": "", "qsci/zoo.py": "",
        "qsci/metrics.py": "from qsci import zoo\n",                       # upward, at the top
        "qsci/deploy/__init__.py": "",
        "qsci/deploy/packing.py": "def f():\n    from ..zoo import x\n",   # upward, in a function
        "qsci/physics.py": "def f():\n    from qsci import tiling\n",      # a cycle dodged ...
        "qsci/tiling.py": "from qsci import physics\n",                    # ... against this one
        "ui/__init__.py": "", "ui/views.py": "from ui import handlers\n",
        "ui/handlers.py": "def f():\n    from ui import views\n",          # a front end dodging too
        "qsci/quant/__init__.py": "", "qsci/quant/complexity.py": "",       # not a quantizer primitive
        "training/__init__.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    # listing an import does not excuse it going up a layer or dodging a cycle
    monkeypatch.setattr(sys.modules[__name__], "FUNCTION_LEVEL_ALLOWED",
                        {("qsci.deploy.packing", "qsci.zoo"), ("qsci.physics", "qsci.tiling")})
    mods, graph = _graph()
    assert graph["qsci.metrics"] == [("qsci.zoo", 1, False)]
    assert graph["qsci.deploy.packing"] == [("qsci.zoo", 2, True)]
    expected = {
        test_no_module_imports_a_higher_layer: ["qsci.metrics (layer 1) imports qsci.zoo",
                                                "qsci.deploy.packing (layer 3) imports qsci.zoo"],
        test_no_function_level_import_dodges_a_cycle: ["qsci.physics imports qsci.tiling",
                                                       "ui.handlers imports ui.views"],
        test_quant_holds_the_quantizer_primitives_only: ["complexity.py"],
    }
    for check, needles in expected.items():
        try:
            check()
        except AssertionError as exc:
            missed = [n for n in needles if n not in str(exc)]
            assert missed == [], f"{check.__name__} missed {missed}: {exc}"
        else:
            raise AssertionError(f"{check.__name__} found nothing in the fake tree")
