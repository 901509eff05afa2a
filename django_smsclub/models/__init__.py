"""The package's models, one module per concern; import them from here.

A :class:`Message` is one text to one recipient; a :class:`DeliveryReport` is one SMS part the
provider acknowledged with an SMSC ID; :class:`OptOut` is the stop list; the webhook models hold
the endpoints of other systems and every event owed to them.
"""

from .idempotency import IDEMPOTENCY_IN_PROGRESS, ApiIdempotencyKey
from .messages import (
    ERROR_MAX_LENGTH,
    PENDING_STATUSES,
    PRIORITY_CAMPAIGN,
    PRIORITY_MAX,
    PRIORITY_MESSAGE,
    RAW_STATUS_MAX_LENGTH,
    Campaign,
    CampaignQuerySet,
    DeliveryReport,
    Message,
    MessageQuerySet,
)
from .optout import OptOut
from .webhooks import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ERROR_MAX_LENGTH",
    "IDEMPOTENCY_IN_PROGRESS",
    "PENDING_STATUSES",
    "PRIORITY_CAMPAIGN",
    "PRIORITY_MAX",
    "PRIORITY_MESSAGE",
    "RAW_STATUS_MAX_LENGTH",
    "ApiIdempotencyKey",
    "Campaign",
    "CampaignQuerySet",
    "DeliveryReport",
    "Message",
    "MessageQuerySet",
    "OptOut",
    "WebhookDelivery",
    "WebhookEndpoint",
]
