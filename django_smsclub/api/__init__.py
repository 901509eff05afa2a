"""The REST API (Django REST framework): messages, campaigns and the account balance.

Mount it under any prefix::

    path("api/sms/", include("django_smsclub.api.urls"))

- :mod:`.views`: the viewsets and the balance view; :mod:`.urls` routes them;
- :mod:`.serializers` and :mod:`.fields`: what the API reads and writes;
- :mod:`.filters`: the query parameters; :mod:`.pagination`: the pages of the lists;
- :mod:`.idempotency`: ``Idempotency-Key`` for every POST;
- :mod:`.permissions`, :mod:`.problems`, :mod:`.schema`, :mod:`.recipients`: what they share.
"""
