"""Status webhooks: what other systems receive, and how they check it came from us.

The events, the header names and :func:`verify_signature` live here, importable without Django
settings (a receiver may be any Python program); recording and delivering them is
:mod:`django_smsclub.services.webhooks`, the HTTP request :mod:`.sender`.
"""

from .signature import (
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TOLERANCE,
    sign,
    signature_header,
    verify_signature,
)

#: A message reached a final status (delivered, undelivered, expired, rejected, failed,
#: unknown or cancelled).
MESSAGE_FINAL = "message.final"
#: A campaign is done: every message of it is final.
CAMPAIGN_DONE = "campaign.done"
#: The events an endpoint may choose, in the order the admin lists them.
EVENTS = (MESSAGE_FINAL, CAMPAIGN_DONE)
#: Sent by the admin's "Send a test event" to one endpoint, whatever events it chose.
TEST_EVENT = "webhook.test"

__all__ = [
    "CAMPAIGN_DONE",
    "EVENTS",
    "EVENT_HEADER",
    "EVENT_ID_HEADER",
    "MESSAGE_FINAL",
    "SIGNATURE_HEADER",
    "TEST_EVENT",
    "TIMESTAMP_HEADER",
    "TOLERANCE",
    "sign",
    "signature_header",
    "verify_signature",
]
