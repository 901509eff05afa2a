"""The emulator models the provider, not us: it imports none of our rule modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import django_smsclub.emulator

PACKAGE = "django_smsclub"
EMULATOR = Path(django_smsclub.emulator.__file__).parent
#: Our own rules (texts, numbers, senders, checks, statuses, gateways): never the provider's.
FORBIDDEN = ("text", "phones", "checks", "status", "gateways")
MODULES = sorted(EMULATOR.glob("*.py"))


def imported_modules(path: Path) -> list[str]:
    """Every module ``path`` imports, as an absolute dotted name (``from . import x`` included)."""
    package = f"{PACKAGE}.emulator"
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append(module)
            found += [f"{module}.{alias.name}" for alias in node.names]
    return found


def forbidden_imports(path: Path) -> list[str]:
    """The forbidden modules ``path`` imports (``from x import y``: ``x``, or ``x.y`` if needed)."""
    found: list[str] = []
    for name in imported_modules(path):
        bad = any(name == f"{PACKAGE}.{m}" or name.startswith(f"{PACKAGE}.{m}.") for m in FORBIDDEN)
        if bad and not any(name.startswith(f"{seen}.") for seen in found):
            found.append(name)
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_emulator_module_imports_our_rules(path):
    assert forbidden_imports(path) == []


def test_every_module_is_checked():
    names = {p.name for p in MODULES}
    assert {"rules.py", "state.py", "xml_api.py", "soap_api.py", "http_api.py"} <= names


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from .. import text", ["django_smsclub.text"]),
        ("from ..gateways.xml import safe_parser", ["django_smsclub.gateways.xml"]),
        ("import django_smsclub.phones", ["django_smsclub.phones"]),
        ("from django_smsclub import checks", ["django_smsclub.checks"]),
        ("from ..status import map_word", ["django_smsclub.status"]),
        ("from . import rules", []),
        ("from ..exceptions import InvalidMessage", []),
    ],
)
def test_the_check_catches_each_form_of_import(tmp_path, source, expected):
    # A module written as if it lived in the emulator package.
    path = tmp_path / "module.py"
    path.write_text(source + "\n", encoding="utf-8")
    assert forbidden_imports(path) == expected
