"""The newcomer's path (quick start, installation, Celery, production) says what a fresh project
needs, as a run of it found: the SQLite options the check asks for, a name per worker, an
emulator with money enough for a big campaign, an API schema with a title."""

import re
from pathlib import Path

from django_smsclub import checks

DOCS = Path(__file__).resolve().parents[2] / "docs"


def page(name):
    return (DOCS / f"{name}.rst").read_text()


def test_the_sqlite_options_of_the_docs_are_those_the_check_asks_for():
    options = repr(checks.SQLITE_OPTIONS).replace("'", '"')
    for name in ("quickstart", "production"):
        assert f'"OPTIONS": {options}' in page(name), name
    assert checks.SQLITE_OPTIONS["timeout"] >= checks.SQLITE_MIN_TIMEOUT


def test_several_workers_on_one_machine_get_a_name_each():
    workers = re.findall(r"celery -A shop worker .*-n (\w+)@%h", page("quickstart"))
    assert len(set(workers)) == len(workers) >= 2
    assert "-n worker1@%h" in page("celery")


def test_the_emulator_of_the_quick_start_has_money_for_a_big_campaign():
    start = page("quickstart")
    balance = re.search(r"smsclub_emulator --port \d+ --balance (\d+)", start)
    assert balance and int(balance.group(1)) * 2 >= 100_000  # 0.50 a part
    assert "1,000 UAH" in start and "0.50" in start


def test_the_api_snippet_gives_the_schema_a_title():
    snippet = page("api").split("SPECTACULAR_SETTINGS", 1)[1][:300]
    assert re.search(r'"TITLE": "[^"]+"', snippet)
