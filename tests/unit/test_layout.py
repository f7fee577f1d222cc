"""The tooling under local/ stays readable and layered: files and functions of a size one can hold in mind,
and packages that depend one way — the command (loradrop_cli) and the development tooling (loradrop_dev)
on the local stack (loradrop_local), never the reverse, and the command only where it starts one."""

from __future__ import annotations

import ast
from pathlib import Path

from loradrop_local.aws.cloudformation import PROJECT_ROOT

LOCAL = PROJECT_ROOT / "local"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
# The two commands that start a local stack; the rest of the command must not import it.
STARTS_A_LOCAL_STACK = {"loradrop_cli.local_stack", "loradrop_cli.demo"}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(LOCAL.rglob("*.py")):
        parts = path.relative_to(LOCAL).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(path: Path) -> set[str]:
    """Every module an import statement names, at the top, in a function or under TYPE_CHECKING."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_no_file_over_400_lines_and_no_function_over_60() -> None:
    too_long = []
    for path in modules().values():
        text = path.read_text()
        if len(text.splitlines()) > MAX_FILE_LINES:
            too_long.append(f"{path.relative_to(LOCAL)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(LOCAL)}:{node.lineno} {node.name}: {length} lines")
    assert too_long == []


def test_packages_depend_one_way_and_the_command_on_the_local_stack_only_to_start_one() -> None:
    wrong_way = []
    for name, path in modules().items():
        package = name.split(".")[0]
        for target in imported(path):
            to = target.split(".")[0]
            if package == "loradrop_local" and to in ("loradrop_cli", "loradrop_dev"):
                wrong_way.append(f"{name} imports {target}")
            starts_one = name in STARTS_A_LOCAL_STACK
            if package == "loradrop_cli" and to in ("loradrop_local", "loradrop_dev") and not starts_one:
                wrong_way.append(f"{name} imports {target}")
    assert wrong_way == []


def test_no_import_cycle_among_the_modules() -> None:
    found = modules()
    graph = {name: {t for t in imported(path) if t in found and t != name} for name, path in found.items()}
    cycles = []

    def visit(name: str, trail: list[str]) -> None:
        for target in sorted(graph[name]):
            if target in trail:
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in done:
                visit(target, [*trail, target])
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert cycles == []
