"""The package's shape, measured from the tree: layers that import one way, no cycles, small
modules and classes, and no dispatch on the kind outside ``ContentKind``."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "storybench_prompts"

# Lowest first. A module may import its own layer and the layers below it, never above.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset(
        {
            "_defaults",
            "_exceptions",
            "_redact",
            "_events",
            "_version",
            "_files",
            "_logs",
            "_closing",
            "_forking",
        }
    ),
    frozenset({"content"}),
    frozenset({"sources"}),
    frozenset({"mirrors"}),
    frozenset({"ops"}),
    frozenset({"cache"}),
    frozenset({"observability"}),
    frozenset({"_settings"}),
    frozenset({"_compose"}),
    frozenset({"_blocking", "compat", "cli", "__main__"}),
    frozenset({"__init__"}),
)
MAX_MODULE_LINES = 450
MAX_CLASS_LINES = 300


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield ".".join(parts), path


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module} is in no layer: add {top!r} to LAYERS")


def imports(module: str, path: Path) -> Iterator[tuple[str, int, bool]]:
    """(imported module, line, at module level outside TYPE_CHECKING) for each import of the
    package by ``module``."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    top_level: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            top_level.add(id(node))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names] if not node.module else [target]
            for name in names:
                if name.startswith("storybench_prompts"):
                    yield name, node.lineno, id(node) in top_level
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("storybench_prompts"):
                    yield alias.name, node.lineno, id(node) in top_level


def resolve(name: str) -> str:
    """The module an imported name lives in (``pkg.mod.Name`` -> ``pkg.mod``)."""
    known = {m for m, _ in modules()}
    known |= {m.removesuffix(".__init__") for m in known}
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def test_imports_flow_one_way():
    upward = []
    for module, path in modules():
        own = layer_of(module)
        for target, line, _ in imports(module, path):
            if layer_of(resolve(target)) > own:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {target}")
    assert upward == []


def test_no_import_cycles_at_module_level():
    graph: dict[str, set[str]] = {}
    for module, path in modules():
        name = module.removesuffix(".__init__")
        graph[name] = {
            resolve(t).removesuffix(".__init__")
            for t, _, top in imports(module, path)
            if top and resolve(t).removesuffix(".__init__") != name
        }
    # A package's __init__ importing its own modules is how packages work, not a cycle.
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if trail and nxt == trail[0].rsplit(".", 1)[0]:
                continue
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif state.get(nxt) is None:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in graph:
        if state.get(node) is None:
            visit(node, [node])
    real = [c for c in cycles if not all(c[0].startswith(m) or m.startswith(c[0]) for m in c)]
    assert real == []


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=lambda v: str(v))
def test_modules_and_classes_stay_small(module, path):
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, module
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            assert lines <= MAX_CLASS_LINES, f"{module}.{node.name}: {lines} lines"


def test_the_package_is_in_subpackages():
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert {"content", "sources", "mirrors", "cache", "ops", "cli", "compat"} <= subpackages


def test_no_dispatch_on_the_kind_outside_content_kinds():
    offenders = []
    for module, path in modules():
        if module == "storybench_prompts.content.kinds":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                isinstance(op, ast.Is | ast.IsNot) for op in node.ops
            ):
                names = [node.left, *node.comparators]
                if any(
                    isinstance(n, ast.Name) and n.id in {"PROMPT_SETS", "EVALUATION_SETS"}
                    for n in names
                ):
                    offenders.append(f"{module}:{node.lineno}")
            if isinstance(node, ast.Compare) and any(
                isinstance(n, ast.Constant) and n.value in {"prompts", "evaluations"}
                for n in [node.left, *node.comparators]
            ):
                offenders.append(f"{module}:{node.lineno} (a kind's name compared)")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "isinstance"
                and len(node.args) == 2
                and any(
                    isinstance(n, ast.Name) and n.id in {"PromptSet", "EvaluationSet"}
                    for n in ast.walk(node.args[1])
                )
            ):
                offenders.append(f"{module}:{node.lineno}")
    assert offenders == []
