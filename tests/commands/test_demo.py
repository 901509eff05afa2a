"""``manage.py smsclub_demo``: the main job, end to end, small."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_runs_a_campaign_to_the_end_through_a_worker():
    out = StringIO()
    call_command("smsclub_demo", recipients=60, seed=7, timeout=120, stdout=out)
    report = out.getvalue()
    assert "60 recipients added" in report and "3 refused" in report
    assert "Every message is final" in report
    finished = re.search(r"message_finished\s+(\d+)", report)
    assert finished and int(finished.group(1)) == 60
    assert "0 recipients got the same text twice" in report
    table = dict(re.findall(r"^(delivered|undelivered|expired|rejected)\s+(\d+)", report, re.M))
    assert sum(map(int, table.values())) == 60


def test_demo_refuses_a_nonsensical_size():
    with pytest.raises(CommandError, match="--recipients 0"):
        call_command("smsclub_demo", recipients=0)
