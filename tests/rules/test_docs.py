"""The documentation keeps up with the code: every setting has an entry with its true default."""

import re
from pathlib import Path

import pytest

from django_smsclub import conf

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_PAGE = ROOT / "docs" / "settings.rst"
GATEWAY_SOURCES = ROOT / "django_smsclub" / "gateways"
# ``options.get("HOST")``, ``options["BALANCE_URL"]``: the keys a gateway reads itself.
GATEWAY_KEY_READ = re.compile(r"""options(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]*)["']""")


def documented_settings():
    """Each entry of the settings page: ``KEY`` on a line of its own, then its indented text."""
    entries = {}
    key = None
    for line in SETTINGS_PAGE.read_text(encoding="utf-8").splitlines():
        term = re.fullmatch(r"``([A-Z][A-Z0-9_]*)``", line)
        if term:
            key = term.group(1)
            entries[key] = ""
        elif key and line.startswith("    "):
            entries[key] += " " + line.strip()
        elif line.strip():
            key = None
    return entries


def keys_the_gateways_read():
    keys = set()
    for source in GATEWAY_SOURCES.rglob("*.py"):
        keys.update(GATEWAY_KEY_READ.findall(source.read_text(encoding="utf-8")))
    return keys - {"NAME"}  # the settings key of the gateway itself, set by conf


@pytest.mark.parametrize(
    ("key", "default"),
    [*conf.DEFAULTS.items(), *conf.GATEWAY_DEFAULTS.items()],
    ids=[*conf.DEFAULTS, *conf.GATEWAY_DEFAULTS],
)
def test_every_setting_is_documented_with_its_true_default(key, default):
    entries = documented_settings()

    assert key in entries, f"docs/settings.rst has no entry for SMSCLUB setting {key}"
    assert f"default ``{default!r}``" in entries[key], (
        f"docs/settings.rst gives {key} another default than conf.py's {default!r}"
    )


def test_every_key_a_gateway_reads_is_documented():
    entries = documented_settings()

    missing = sorted(keys_the_gateways_read() - set(entries))

    assert "HOST" in keys_the_gateways_read()  # the scan itself still finds what it must
    assert missing == []


def test_the_settings_page_lists_poll_batch_size_and_says_which_gateways():
    entries = documented_settings()

    assert "POLL_BATCH_SIZE" in entries
    assert "gateways: json" in entries["TOKEN"]
    assert "gateways: smpp" in entries["WINDOW"]
