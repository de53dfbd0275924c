"""The package layering (README "Architecture"), read from the source with ``ast``.

- The application layer (``gateway/app/``: daemon, lifecycle, cli ...) is the top: nothing
  imports it but ``gateway/__main__.py``.
- Only the HTTP layer itself (``gateway/http/``, the web console ``gateway/console/``) and the
  daemon that serves it (``gateway/app/daemon.py``) import ``gateway.http``; nothing imports
  the old ``gateway.api``.
- The application core (``gateway/core/``) depends on no edge: not on the HTTP layer, the
  console, the front, inbound, campaigns, links or the application layer, and not on
  ``aiohttp.web``.
- Front, inbound, campaigns and links reach the core, never the HTTP layer (the first rule).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

GATEWAY = Path(__file__).resolve().parent.parent / "gateway"

HTTP_LAYER = ("gateway.http", "gateway.api")
"""The HTTP layer's package, and its old name (which must not come back)."""

HTTP_IMPORTERS = ("gateway.http", "gateway.console", "gateway.app.daemon")
"""Modules that may import the HTTP layer: itself, the console (HTTP pages) and the daemon."""

APP = "gateway.app"
APP_IMPORTERS = ("gateway.app", "gateway.__main__")
"""The application layer imports every other; only ``python -m gateway`` imports it."""
APP_MODULES = ("daemon", "lifecycle", "cli", "ops_cli", "sdnotify", "observe")
"""The application layer's modules, which lived in ``gateway/`` before."""

CORE = "gateway.core"
CORE_FORBIDDEN = (
    "gateway.http",
    "gateway.api",
    "gateway.console",
    "gateway.front",
    "gateway.inbound",
    "gateway.campaigns",
    "gateway.links",
    "gateway.app",
    "aiohttp.web",
)
"""What the core must not depend on: the edges above it, and the HTTP server library."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(GATEWAY.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the module at ``path``."""
    return imports_of(
        path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py"
    )


def imports_of(source: str, name: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, the text of module ``name``
    (relative imports resolved); ``from a import b`` yields both ``a`` and ``a.b`` (``b`` may be
    a module). Imports inside functions and ``TYPE_CHECKING`` blocks count too."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"


def within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def violations(found: Iterable[tuple[Path, int, str]]) -> list[str]:
    """One line per offending import statement, naming the module it reaches."""
    first: dict[tuple[Path, int], str] = {}
    for path, line, target in found:
        first.setdefault((path, line), target)
    return [f"{p.relative_to(GATEWAY.parent)}:{n} imports {t}" for (p, n), t in first.items()]


def modules() -> list[Path]:
    return sorted(GATEWAY.rglob("*.py"))


def test_the_tree_is_there() -> None:
    # A walk over nothing would pass whatever the imports: make sure it sees the packages.
    names = {module_name(p) for p in modules()}
    assert "gateway.app.daemon" in names
    assert "gateway.app.cli" in names
    assert "gateway.front.server" in names
    assert any(within(n, (CORE,)) for n in names), "no gateway/core package"
    assert any(within(n, ("gateway.http",)) for n in names), "no gateway/http package"
    assert not (GATEWAY / "api").exists(), "gateway/api/ came back: the HTTP layer is gateway/http/"
    for name in APP_MODULES:
        assert f"gateway.{name}" not in names, f"gateway/{name}.py belongs in gateway/app/"


def test_only_the_entry_point_imports_the_app_layer() -> None:
    wrong = violations(
        (path, line, target)
        for path in modules()
        if not within(module_name(path), APP_IMPORTERS)
        for line, target in imported(path)
        if within(target, (APP,)) or target in {f"gateway.{m}" for m in APP_MODULES}
    )
    assert not wrong, "\n".join(wrong)


def test_only_the_daemon_imports_the_http_layer() -> None:
    wrong = violations(
        (path, line, target)
        for path in modules()
        if not within(module_name(path), HTTP_IMPORTERS)
        for line, target in imported(path)
        if within(target, HTTP_LAYER)
    )
    assert not wrong, "\n".join(wrong)


def test_the_core_depends_on_no_edge() -> None:
    wrong = violations(
        (path, line, target)
        for path in modules()
        if within(module_name(path), (CORE,))
        for line, target in imported(path)
        if within(target, CORE_FORBIDDEN)
    )
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_every_form_of_import() -> None:
    # The rules' own test: absolute, relative, function-level imports are all seen.
    source = (
        "from ..http import errors\n"
        "import gateway.http.auth\n"
        "def f():\n"
        "    from gateway.http.app import make_app\n"
    )
    targets = {t for _, t in imports_of(source, "gateway.inbound.service", is_package=False)}
    assert {
        "gateway.http",
        "gateway.http.errors",
        "gateway.http.auth",
        "gateway.http.app",
    } <= targets
    assert {t for _, t in imports_of("from . import x\n", "gateway.core", is_package=True)} == {
        "gateway.core",
        "gateway.core.x",
    }
    assert within("gateway.http.errors", HTTP_LAYER)
    assert within("gateway.api.intake", HTTP_LAYER)
    assert not within("gateway.httpx", HTTP_LAYER)
