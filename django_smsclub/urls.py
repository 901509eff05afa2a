"""The public pages; include them where ``SMSCLUB["UNSUBSCRIBE_URL"]`` points, less its ``u/``::

path("", include("django_smsclub.urls"))  # UNSUBSCRIBE_URL = "https://example.com/u/"
"""

from django.urls import re_path

from .views import unsubscribe_page

app_name = "smsclub"

urlpatterns = [
    # With or without the trailing slash: the link in an SMS has none, to save a character.
    re_path(r"^u/(?P<token>[0-9A-Za-z]+)/?$", unsubscribe_page, name="unsubscribe"),
]
