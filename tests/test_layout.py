"""The floors and their import rules (README "Layout"), checked by walking every module's AST.

Floors, bottom to top: shared (fedsnn.errors, fedsnn.provenance) < task <
attacks < analysis < experiment < apps (server, clients, the launcher) <
scripts (simulations, bench). A violation names the file, the line and the rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fedsnn", "attacks", "server", "clients", "simulations", "bench")

FLOORS: list[tuple[str, int]] = [  # module prefix -> floor; the longest matching prefix wins
    ("fedsnn", 0), ("fedsnn.task", 1), ("attacks", 2), ("fedsnn.analysis", 3), ("fedsnn.experiment", 4),
    ("fedsnn.launch", 5), ("server", 5), ("clients", 5), ("simulations", 6), ("bench", 6),
]
FLOOR_NAMES = {0: "shared", 1: "task", 2: "attacks", 3: "analysis", 4: "experiment", 5: "apps", 6: "scripts"}
# Packages inside a floor: code outside one imports from its __init__ only.
SUBPACKAGES = ("attacks.core", "attacks.gradient", "attacks.batched", "attacks.blackbox",
               "fedsnn.task.data", "fedsnn.task.models")
ATTACKS_MAY_IMPORT = ("attacks", "fedsnn.task.models", "fedsnn.errors")
FLWR_IMPORTERS = ("server", "clients", "fedsnn.launch")  # the apps floor


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def floor_of(name: str) -> int | None:
    matches = [(len(p), f) for p, f in FLOORS if within(name, p)]
    return max(matches)[1] if matches else None


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[module_name(path, root)] = path
    return found


def imports_of(path: Path) -> list[tuple[int, str, bool, bool]]:
    """(line, imported name, at module level?, a name imported from a package?) for every
    absolute import in ``path``; ``from attacks import gradient`` yields attacks and attacks.gradient."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top = {id(n) for n in tree.body} | {id(n) for s in tree.body if isinstance(s, (ast.If, ast.Try))
                                        for n in ast.walk(s)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, id(node) in top, False) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module, id(node) in top, False))
            found += [(node.lineno, f"{node.module}.{a.name}", id(node) in top, True) for a in node.names]
    return found


def violations(root: Path = ROOT) -> list[str]:
    """Every broken rule, as 'file:line: what'."""
    modules = project_modules(root)
    problems: list[str] = []
    for name, path in modules.items():
        here = floor_of(name)
        where = path.relative_to(root)
        for line, target, top_level, from_package in imports_of(path):
            if from_package and target not in modules:
                continue  # a function or class, not a submodule
            at = f"{where}:{line}"
            if within(target, "flwr") and not any(within(name, p) for p in FLWR_IMPORTERS):
                problems.append(f"{at}: imports {target}; only the apps (server/, clients/, fedsnn.launch) import flwr")
            if target not in modules and not any(within(target, m) for m in ("fedsnn", "attacks")):
                continue
            there = floor_of(target)
            if not top_level and not from_package:
                problems.append(f"{at}: function-local import of {target}; import at module level")
            if here is not None and there is not None and there > here:
                problems.append(f"{at}: {FLOOR_NAMES[here]} floor imports {target} from the "
                                f"{FLOOR_NAMES[there]} floor above it")
            if within(name, "attacks") and not any(within(target, p) for p in ATTACKS_MAY_IMPORT):
                problems.append(f"{at}: attacks import {target}; they may import only the task's models "
                                "and fedsnn.errors")
            for sub in SUBPACKAGES:
                if within(target, sub) and target != sub and not within(name, sub) and not from_package:
                    problems.append(f"{at}: imports {target} from outside {sub}; import from {sub} itself")
    return problems


def reaches(start: str, modules: dict[str, Path]) -> dict[str, str]:
    """Every project module ``start`` imports, transitively -> the module that imported it first."""
    seen, todo = {start: ""}, [start]
    while todo:
        current = todo.pop()
        for _, target, _, _ in imports_of(modules[current]):
            parents = [target] + [target.rsplit(".", k)[0] for k in range(1, target.count(".") + 1)]
            for t in parents:
                if t in modules and t not in seen:
                    seen[t] = current
                    todo.append(t)
    return seen


def test_every_module_keeps_the_import_rules():
    problems = violations()
    assert not problems, "import rules broken:\n" + "\n".join(problems)


def test_attacks_never_reach_data_training_analysis_or_experiment_transitively():
    modules = project_modules()
    forbidden = ("fedsnn.task.data", "fedsnn.task.training", "fedsnn.task.target_training", "fedsnn.analysis",
                 "fedsnn.experiment")
    for name in [m for m in modules if within(m, "attacks")]:
        for reached, via in reaches(name, modules).items():
            assert not any(within(reached, f) for f in forbidden), f"{name} reaches {reached} (via {via})"


def test_nothing_below_the_experiment_takes_a_run_config():
    for name, path in project_modules().items():
        if (floor_of(name) or 0) < 4:
            tree = ast.parse(path.read_text())
            used = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "RunConfig"]
            assert not used, f"{path.relative_to(ROOT)}:{used[0]} uses RunConfig below the experiment floor"


@pytest.mark.parametrize("line, rule", [
    ("from fedsnn.task.data import load_dataset\n", "they may import only the task's models"),
    ("from fedsnn.task.data.loaders import load_mnist\n", "import from fedsnn.task.data itself"),
    ("from fedsnn.experiment.config import RunConfig\n", "floor imports fedsnn.experiment.config"),
    ("import flwr\n", "only the apps (server/, clients/, fedsnn.launch) import flwr"),
    ("def f():\n    from attacks.registry import ATTACKS\n", "function-local import"),
])
def test_the_check_fails_and_names_the_line_when_an_attack_breaks_a_rule(tmp_path, line, rule):
    """A copy of the tree where attacks/gradient/dlg.py gains one bad import: the check must say so."""
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "__pycache__" not in path.parts:
                copy = tmp_path / path.relative_to(ROOT)
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_text(path.read_text())
    bad = tmp_path / "attacks" / "gradient" / "dlg.py"
    bad.write_text(bad.read_text() + "\n" + line)
    line_no = len(bad.read_text().splitlines()) - line.count("\n") + 1 + (1 if line.startswith("def") else 0)
    found = [p for p in violations(tmp_path) if p.startswith("attacks/gradient/dlg.py")]
    assert any(rule in p and f":{line_no}:" in p for p in found), found
