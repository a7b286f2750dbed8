"""
The package's layering, read from the source: no import circle between gram_hf modules, and the engine never imports a
task (tasks register their heads with the engine, docs/design.md section 2).

Every `import` / `from ... import` of a gram_hf module counts, at module level or inside a function, except those under
`if TYPE_CHECKING:` (annotations only, never executed). Importing a module also runs its parent packages' `__init__`;
those implicit edges are left out (every submodule would otherwise "import" the package root), but an explicit
`from . import name` of a package attribute counts as importing the package.
"""

from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import pytest

import gram_hf

PACKAGE_DIR = Path(gram_hf.__file__).parent
# The composition layer: the package root imports the tasks so that they register on `import gram_hf`, and the
# programs (`gram_hf.scripts`, the `gram-hf` command, the deprecated `gram_hf.recipes`) wire tasks, engine and data
# together. Everything else is the engine.
NON_ENGINE = ("gram_hf", "gram_hf.recipes", "gram_hf.cli", "gram_hf.scripts")
TASKS = "gram_hf.tasks"


def module_files() -> dict[str, Path]:
    """Every gram_hf module by dotted name (`gram_hf` for the root `__init__.py`)."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = module_files()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST):
    """Every import statement below `node`, at any depth, skipping the bodies of `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _import_nodes_of(other)
            continue
        yield from _import_nodes_of(child)


def _import_nodes_of(node: ast.AST):
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    yield from _import_nodes(node)


def imports_of(name: str, module_level_only: bool = False) -> set[str]:
    """The gram_hf modules that module `name` imports (see the module docstring for what counts)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    nodes = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    found = set()
    for node in nodes if module_level_only else _import_nodes(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            # `from x import y` imports the module x.y when there is one, else the attribute y of x.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        found.update(target for target in targets if target in MODULES)
    found.discard(name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path `[a, b, ..., a]`, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_the_source_scan_sees_every_module_and_known_edges():
    for name in MODULES:
        importlib.import_module(name)
    assert {"gram_hf.trainer", "gram_hf.checkpointing", "gram_hf.windows", "gram_hf.export"} <= set(MODULES)
    # a module-level relative import, a package-attribute import, a function-level import, a TYPE_CHECKING one
    assert "gram_hf.checkpointing" in GRAPH["gram_hf.trainer"]
    assert "gram_hf.tasks" in GRAPH["gram_hf"]
    assert "gram_hf.export" in GRAPH["gram_hf.modeling"]  # the deprecated forwarders, inside their functions
    assert "gram_hf.modeling" not in GRAPH["gram_hf.export"]  # only under TYPE_CHECKING there


def test_the_cycle_finder_finds_a_planted_cycle():
    planted = {name: set(targets) for name, targets in GRAPH.items()}
    planted["gram_hf.windows"].add("gram_hf.trainer")
    cycle = find_cycle(planted)
    assert cycle is not None and cycle[0] == cycle[-1] and "gram_hf.windows" in cycle


def test_no_import_circle():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


def test_modeling_and_export_do_not_import_each_other_at_import_time():
    assert "gram_hf.export" not in imports_of("gram_hf.modeling", module_level_only=True)
    assert "gram_hf.modeling" not in GRAPH["gram_hf.export"]
    # the scan of module-level imports sees them: modeling's own imports are there
    assert {"gram_hf.configuration", "gram_hf.heads"} <= imports_of("gram_hf.modeling", module_level_only=True)


def test_the_engine_never_imports_a_task():
    engine = [
        name
        for name in MODULES
        if not any(name == layer or name.startswith(layer + ".") for layer in (*NON_ENGINE[1:], TASKS))
        and name != NON_ENGINE[0]
    ]
    assert {"gram_hf.trainer", "gram_hf.modeling", "gram_hf.metrics", "gram_hf.data", "gram_hf.task_registry"} <= set(
        engine
    )
    assert not any(name.startswith("gram_hf.scripts") for name in engine)
    for name in engine:
        tasks = sorted(t for t in reachable(GRAPH, name) if t == TASKS or t.startswith(TASKS + "."))
        assert not tasks, f"{name} imports the task module(s) {tasks}"


@pytest.mark.parametrize("name", ["save_encoder", "push_encoder_to_hub"])
def test_model_export_methods_are_deprecated_forwarders(name, monkeypatch, tiny_bert_config):
    from gram_hf import GramConfig, GramModel, export

    model = GramModel(GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing"))
    calls = []
    monkeypatch.setattr(export, name, lambda *args, **kwargs: calls.append((args, kwargs)) or "done")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert getattr(model, name)("target", "tokenizer", max_length=7) == "done"
    (args, kwargs), *more = calls
    assert not more and args == (model, "target", "tokenizer") and kwargs["max_length"] == 7
    (warning,) = [w for w in caught if issubclass(w.category, FutureWarning)]
    assert f"gram_hf.export.{name}" in str(warning.message)
    assert warning.filename == __file__  # attributed to the caller's line
