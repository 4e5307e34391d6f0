"""The layers of the house point one way (docs/architecture.md).

Every import statement of the product packages is read from the source (at module level and
inside functions alike), so a rule broken anywhere fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("mjweb", "gallery", "billing", "backoffice", "simulator")


def imports_of(source: str, module: str) -> set[str]:
    """Dotted names a module's source imports (relative imports resolved against `module`)."""
    found: set[str] = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.add(name)
            # `from gallery import tasks` imports gallery.tasks.
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def modules() -> list[tuple[str, Path]]:
    found = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found.append((dotted.removesuffix(".__init__"), path))
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def broken_rule(module: str, imported: str) -> str | None:
    """Which rule `module` importing `imported` breaks, or None."""
    if within(module, "simulator"):
        if any(within(imported, other) for other in PRODUCT if other != "simulator"):
            return "the simulator imports nothing of the product"
        return None
    if within(imported, "simulator") and not within(module, "mjweb.management"):
        return "only the simulator's management command imports the simulator"
    if within(imported, "backoffice") and not within(module, "backoffice"):
        return "nothing imports the back office"
    if within(module, "billing") and within(imported, "gallery"):
        return "billing imports no gallery code"
    if (
        within(module, "gallery.providers")
        and within(imported, "gallery")
        and not within(imported, "gallery.providers")
    ):
        return "gallery.providers imports nothing else of gallery"
    if module == "mjweb.catalogue" and any(within(imported, p) for p in PRODUCT):
        return "the catalogue is a leaf: it imports nothing of the product"
    return None


def test_every_import_of_the_product_follows_the_layers() -> None:
    broken = [
        f"{module} imports {imported}: {rule}"
        for module, path in modules()
        for imported in sorted(imports_of(path.read_text(encoding="utf-8"), module))
        if (rule := broken_rule(module, imported))
    ]
    assert not broken, "\n".join(broken)


def test_the_walk_reads_every_product_package() -> None:
    names = {module for module, _ in modules()}
    for expected in ("gallery.providers.registry", "billing.ledger", "backoffice.site"):
        assert expected in names
    assert "simulator.server" in names


@pytest.mark.parametrize(
    ("module", "source", "rule"),
    [
        ("billing.ledger", "from gallery.models import Job", "billing imports no gallery code"),
        ("billing.quotas", "def f():\n    import gallery.models", "billing imports no gallery"),
        ("billing.prices", "from gallery import models", "billing imports no gallery"),
        ("gallery.providers.cometapi", "from gallery import webhooks", "gallery.providers"),
        ("gallery.providers.piapi", "from .. import audit", "gallery.providers"),
        ("gallery.views", "from backoffice import reports", "nothing imports the back office"),
        ("billing.views", "import backoffice.site", "nothing imports the back office"),
        ("mjweb.urls", "from backoffice.jobs import JobAdmin", "nothing imports"),
        ("simulator.server", "from gallery.providers import base", "the simulator imports"),
        ("simulator.engine", "from mjweb import catalogue", "the simulator imports"),
        ("gallery.services", "import simulator", "only the simulator's management"),
        ("mjweb.catalogue", "from gallery.models import Job", "the catalogue is a leaf"),
    ],
)
def test_a_wrong_import_is_caught(module: str, source: str, rule: str) -> None:
    imported = imports_of(source, module)
    rules = {broken_rule(module, name) for name in imported} - {None}
    assert any(found.startswith(rule) for found in rules if found), (imported, rules)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("gallery.providers.cometapi", "from gallery.providers.base import Button"),
        ("gallery.providers.registry", "from . import piapi"),
        ("backoffice.jobs", "from gallery.models import Job"),
        ("gallery.services", "from billing import ledger"),
        ("billing.ledger", "from mjweb import catalogue"),
        ("mjweb.management.commands.simulator", "from simulator.server import SimulatorServer"),
    ],
)
def test_an_allowed_import_passes(module: str, source: str) -> None:
    assert {broken_rule(module, name) for name in imports_of(source, module)} == {None}
