"""Error reports (the DEBUG page, the admins' error mails) that never show a credential."""

import re

from django.views.debug import SafeExceptionReporterFilter


class CredentialsFilter(SafeExceptionReporterFilter):
    """Django's filter, which cleanses any setting or request variable whose name holds
    ``PASS``, ``TOKEN``, ``KEY``, ``SECRET`` (at any depth of a dict or list), plus:

    - every variable named ``SMSCLUB_...`` whole: ``SMSCLUB_JSON`` holds the whole ``SMSCLUB``
      setting as one string, whose passwords are no key Django can find;
    - the URLs that may hold a password: ``DATABASE_URL``, ``CELERY_BROKER_URL``,
      ``REDIS_URL``.

    The ``SMSCLUB`` setting itself keeps its gateway names and options on the page; its
    ``PASSWORD`` and ``TOKEN`` keys are cleansed at any depth.
    """

    hidden_settings = re.compile(
        r"API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|^SMSCLUB_|DATABASE_URL|BROKER_URL"
        r"|REDIS_URL",
        flags=re.IGNORECASE,
    )
