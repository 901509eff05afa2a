"""The API's URLs; include them under any prefix::

path("api/sms/", include("django_smsclub.api.urls"))
"""

from django.urls import path
from rest_framework.routers import SimpleRouter

from .exports import CampaignExportView
from .optout import OptOutViewSet
from .stats import CampaignOperatorsView, OperatorStatsView
from .views import BalanceView, CampaignViewSet, MessageViewSet
from .webhooks import WebhookDeliveryViewSet, WebhookEndpointViewSet

app_name = "smsclub_api"

router = SimpleRouter()
router.register("messages", MessageViewSet, basename="message")
router.register("campaigns", CampaignViewSet, basename="campaign")
router.register("webhooks/endpoints", WebhookEndpointViewSet, basename="webhook-endpoint")
router.register("webhooks/deliveries", WebhookDeliveryViewSet, basename="webhook-delivery")
router.register("optout", OptOutViewSet, basename="optout")

urlpatterns = [
    *router.urls,
    path("balance/", BalanceView.as_view(), name="balance"),
    path(
        "campaigns/<str:pk>/operators/", CampaignOperatorsView.as_view(), name="campaign-operators"
    ),
    path("campaigns/<str:pk>/export/", CampaignExportView.as_view(), name="campaign-export"),
    path("stats/operators/", OperatorStatsView.as_view(), name="operator-stats"),
]
