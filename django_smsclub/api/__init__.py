"""The REST API (Django REST framework): messages, campaigns and the account balance.

Mount it under any prefix::

    path("api/sms/", include("django_smsclub.api.urls"))

Nothing is imported here, so ``django_smsclub.models`` can load
:mod:`django_smsclub.api.idempotency` without loading DRF.
"""
