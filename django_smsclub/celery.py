"""The periodic tasks, ready for a project's Celery beat::

from django_smsclub.celery import beat_schedule

app.conf.beat_schedule.update(beat_schedule)
"""

from __future__ import annotations

from typing import Any

# A periodic run that waited longer than its period is dropped: the next one does its work.
beat_schedule: dict[str, dict[str, Any]] = {
    "django_smsclub.send_due": {
        "task": "django_smsclub.tasks.send_due",
        "schedule": 30.0,
        "options": {"expires": 30.0},
    },
    "django_smsclub.poll_reports": {
        "task": "django_smsclub.tasks.poll_reports",
        "schedule": 30.0,
        "options": {"expires": 30.0},
    },
    "django_smsclub.sweep": {
        "task": "django_smsclub.tasks.sweep",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    "django_smsclub.webhooks_due": {
        "task": "django_smsclub.tasks.webhooks_due",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
}
