"""The code's shape: libraries (src/lib/) import only libraries; stages (src/stages/) import only
libraries, never another stage; commands (src/*.py) import libraries, never a stage; there is
no import cycle; and a src module is imported inside a function only when importing it at the
top would pull a heavy third-party package (TensorFlow, Keras, MLflow) into start-up."""

from __future__ import annotations

import ast

from tests.import_graph import imports, layer, modules

HEAVY = {"keras", "tensorflow", "mlflow"}  # seconds to import: deferred into the functions that need them
ALLOWED = {
    "library": {"library", "package"},
    "stage": {"library", "package"},
    "command": {"library", "package"},
    "package": {"library", "package"},
}


def top_level_packages(module: str) -> set[str]:
    tree = ast.parse(modules()[module].read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_three_layers_are_the_three_folders():
    layers = {name: layer(name) for name in modules()}
    assert {n for n, kind in layers.items() if kind == "stage"} == {
        "src.stages.download",
        "src.stages.tokenize",
        "src.stages.pad",
        "src.stages.train",
        "src.stages.evaluate",
        "src.stages.baseline",
        "src.stages.blend",
        "src.stages.pretrain",
    }
    assert {"src.lib.config", "src.lib.model_folder", "src.lib.training", "src.lib.data"} <= {
        n for n, kind in layers.items() if kind == "library"
    }
    assert {"src.sweep", "src.predict", "src.registry", "src.compare", "src.repeat", "src.config"} <= {
        n for n, kind in layers.items() if kind == "command"
    }


def test_imports_point_down_the_layers_only():
    wrong = [
        f"{name} ({layer(name)}) imports {target} ({layer(target)})"
        for name in modules()
        for target in imports(name)
        if layer(target) not in ALLOWED[layer(name)]
    ]
    assert wrong == []


def test_there_is_no_import_cycle():
    graph = {name: set(imports(name)) for name in modules()}
    state, cycles = {}, []

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycles.append(
                    " -> ".join(path[path.index(target) :] + [name, target])
                    if target in path
                    else f"{name} -> {target}"
                )
            elif target not in state:
                visit(target, path + [name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert cycles == []


def test_a_src_module_is_imported_inside_a_function_only_to_defer_a_heavy_package():
    deferred = [
        (name, target, where)
        for name in modules()
        for target, places in imports(name).items()
        for where in places
        if where != "top"
    ]
    unjustified = [
        f"{name}.{where} imports {target}" for name, target, where in deferred if not top_level_packages(target) & HEAVY
    ]
    assert unjustified == []
    assert ("src.lib.training", "src.lib.model", "_compiled_model") in deferred  # the rule is exercised
