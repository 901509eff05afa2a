"""The API's URLs; include them under any prefix::

path("api/sms/", include("django_smsclub.api.urls"))
"""

from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import BalanceView, CampaignViewSet, MessageViewSet

app_name = "smsclub_api"

router = SimpleRouter()
router.register("messages", MessageViewSet, basename="message")
router.register("campaigns", CampaignViewSet, basename="campaign")

urlpatterns = [
    *router.urls,
    path("balance/", BalanceView.as_view(), name="balance"),
]
