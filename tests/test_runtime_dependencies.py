"""Everything the installed `kai` imports is installed by `make run`, not only by the test extras.

`make run` installs the package with its `ml` extra and nothing else; the `dev` extra (pytest,
httpx for the test client, moto...) exists only where `make test` ran. A module that `kai
serve`, `kai worker` or a `kai` command imports from a package only `dev` brings works on every
developer's machine and fails on a new user's first command, so the sources are read here, not
trusted to whoever ran the suite first.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

SOURCE = Path(__file__).resolve().parent.parent / "src" / "kai"
# The extras `make run` installs beside the package.
RUN_EXTRAS = {"ml"}


def _requirements(distribution: str, extras: set[str]) -> list[Requirement]:
    wanted = []
    for line in metadata.requires(distribution) or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras | {""}):
            wanted.append(requirement)
    return wanted


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_by_run() -> set[str]:
    """Distributions `make run` installs: kai's runtime requirements and the `ml` extra,
    with everything they require in turn."""
    seen: set[str] = set()
    pending = _requirements("kai", RUN_EXTRAS)
    while pending:
        requirement = pending.pop()
        name = _canonical(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            pending.extend(_requirements(requirement.name, set(requirement.extras)))
        except metadata.PackageNotFoundError:
            continue
    return seen


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_at_run_time(tree: ast.AST) -> set[str]:
    """Top-level names of the modules a source imports, leaving out `if TYPE_CHECKING:`."""
    names: set[str] = set()
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _type_checking_only(node):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        pending.extend(ast.iter_child_nodes(node))
    return names


def test_every_imported_package_is_installed_by_make_run() -> None:
    providers = metadata.packages_distributions()
    allowed = installed_by_run()
    missing: dict[str, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for module in imported_at_run_time(tree):
            if module in sys.stdlib_module_names or module == "kai":
                continue
            distributions = {_canonical(name) for name in providers.get(module, [])}
            if not distributions & allowed:
                where = str(path.relative_to(SOURCE.parent))
                missing.setdefault(module, set()).add(where)
    assert missing == {}, f"imported but not installed by `make run`: {missing}"


def test_the_check_sees_a_test_only_import() -> None:
    """The check itself: httpx, which only the `dev` extra declares, is caught."""
    tree = ast.parse("import httpx\nif TYPE_CHECKING:\n    import moto\n")
    assert imported_at_run_time(tree) == {"httpx"}
    assert "moto" not in installed_by_run()
