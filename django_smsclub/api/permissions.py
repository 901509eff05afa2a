"""Who may do what through the API: Django's model permissions, and a rate per user.

Authentication and the project's own ``DEFAULT_PERMISSION_CLASSES`` and
``DEFAULT_THROTTLE_CLASSES`` apply as set in ``REST_FRAMEWORK``; these add to them.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission, DjangoModelPermissions
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

#: The ``DEFAULT_THROTTLE_RATES`` key that limits the API, e.g. ``{"smsclub": "60/min"}``.
THROTTLE_SCOPE = "smsclub"
BALANCE_PERMISSION = "django_smsclub.view_balance"

_VIEW = "%(app_label)s.view_%(model_name)s"


class ModelPermissions(DjangoModelPermissions):
    """Model permissions, with the view permission required for reading.

    An action of a viewset that is not plain CRUD (``start``, ``recipients``) names the verb it
    needs in the view's ``action_permissions``, say ``{"start": "change"}``.
    """

    perms_map = {**DjangoModelPermissions.perms_map, "GET": [_VIEW], "HEAD": [_VIEW]}

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        model = self._queryset(view).model
        verb = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if verb is None:
            perms = self.get_required_permissions(request.method or "", model)
        else:
            perms = [f"{model._meta.app_label}.{verb}_{model._meta.model_name}"]
        return request.user.has_perms(perms)


class CanViewBalance(BasePermission):
    """The ``django_smsclub.view_balance`` permission: the account's money is not for all."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(BALANCE_PERMISSION))


class SmsClubThrottle(ScopedRateThrottle):
    """A rate per user (per IP for anonymous requests) for the whole API.

    The rate is ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["smsclub"]``, read per request so a
    project without it (and ``override_settings``) works: no rate, no limit.
    """

    # Not ScopedRateThrottle's cache keys: a project that also throttles by scope must not
    # count each request twice.
    cache_format = "smsclub_api_throttle_%(scope)s_%(ident)s"

    def allow_request(self, request: Request, view: Any) -> bool:
        self.scope = THROTTLE_SCOPE
        rate = (api_settings.DEFAULT_THROTTLE_RATES or {}).get(THROTTLE_SCOPE)
        self.rate = str(rate) if rate else None
        if not self.rate:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super(ScopedRateThrottle, self).allow_request(request, view)
