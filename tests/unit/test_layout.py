"""The package's layout: its parts import one another in the direction data flows, and never
in a circle.

A part is a subpackage of `exporter/` or a module at its top. The order below is the flow, with
what every stage leans on first; a module may import from its own part and from parts before
it. Read from the source with `ast`, so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import exporter

PACKAGE = Path(exporter.__file__).parent

# The flow, bottom up: docs/development.md's map lists the same parts in the same order.
ORDER = (
    "__init__",  # the version
    "process",  # logging, malloc tuning, worker threads, listen addresses
    "simulator",  # the stand-in API: shares nothing of the exporter but the above
    "config",
    "codes",
    "snapshot",
    "api",
    "calls",
    "balance",
    "tasks",
    "exposition",
    "web",
    "demo",
    "daemon",
    "cli",
    "__main__",
)


def part_of(module: str) -> str:
    """`exporter.api.wire` -> `api`; `exporter` -> `__init__`."""
    names = module.split(".")
    return names[1] if len(names) > 1 else "__init__"


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    names = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(names)


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """Every `exporter` module the file imports, with its line, in functions too."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "exporter":
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "exporter":
                    yield node.lineno, alias.name


def graph() -> dict[str, set[str]]:
    return {
        module_name(path): {module for _, module in imports_of(path)}
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def test_every_part_of_the_package_has_its_place_in_the_flow() -> None:
    parts = {part_of(module) for module in graph()}
    assert parts <= set(ORDER), f"parts missing from ORDER: {sorted(parts - set(ORDER))}"


def test_parts_import_only_their_own_part_and_the_parts_before_it() -> None:
    against = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, module in imports_of(path)
        if ORDER.index(part_of(module)) > ORDER.index(part_of(module_name(path)))
    ]
    assert against == []


def test_no_module_imports_itself_through_others() -> None:
    modules = graph()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module in done:
            return
        for imported in sorted(modules.get(module, ())):
            visit(imported, (*path, module))
        done.add(module)

    for module in modules:
        visit(module, ())


def test_each_subpackage_says_what_its_stage_holds_and_hands_on() -> None:
    undocumented = [
        str(init.relative_to(PACKAGE.parent))
        for init in sorted(PACKAGE.glob("*/__init__.py"))
        if len(ast.get_docstring(ast.parse(init.read_text())) or "") < 80
    ]
    assert undocumented == []


def test_at_most_ten_modules_stay_at_the_top() -> None:
    assert len(list(PACKAGE.glob("*.py"))) <= 10


def test_no_module_is_longer_than_a_reader_takes_in_at_once() -> None:
    long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > 450
    }
    assert long == {}
