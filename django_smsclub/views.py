"""The one page the package shows the public: where an unsubscribe link leads.

``GET`` asks the person to confirm and changes nothing (link previews in messengers fetch it
too); ``POST`` (CSRF-protected) puts the number on the stop list with scope ``marketing``,
source ``link``. A token that is not ours is a 404 that does nothing. The page says nothing of
whether the number was on the list before, shows only the number's last two digits, and is
neither cached nor indexed, nor does it send the token on to another site as a referrer. Its
language is the request's (``Accept-Language``, or the language cookie), Ukrainian, Russian or
English.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from . import unsubscribe
from .models import OptOut
from .services import optout

TEMPLATE = "django_smsclub/unsubscribe.html"


@never_cache
@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe_page(request: HttpRequest, token: str) -> HttpResponse:
    phone = unsubscribe.read_token(token)
    if phone is None:
        raise Http404("no such page")
    language = getattr(request, "LANGUAGE_CODE", None) or translation.get_language_from_request(
        request
    )
    done = request.method == "POST"
    if done:
        optout.opt_out(phone, OptOut.Scope.MARKETING, source=OptOut.Source.LINK)
    with translation.override(language):
        response = render(request, TEMPLATE, {"done": done, "ending": phone[-2:]})
        response.headers["Content-Language"] = translation.get_language()
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    # Not "no-referrer": the form's POST would then say "Origin: null", which CSRF refuses.
    response.headers["Referrer-Policy"] = "same-origin"
    return response
