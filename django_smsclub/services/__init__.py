"""The domain operations, one module per concern:

- :mod:`.sending`: ``send_sms``, ``send_personalized``, idempotency keys, asking for a send;
- :mod:`.campaigns`: add recipients, start, cancel, retry the failed, resend messages; the
  table of which campaign state allows which action;
- :mod:`.pipeline`: claim a batch, send it, record the outcomes, settle dead workers' claims;
- :mod:`.leases`: renew the claims a worker holds while it sends them;
- :mod:`.tracking`: poll due reports, apply the provider's words, poll now;
- :mod:`.transitions`: moving statuses and signalling them after commit, cancelling;
- :mod:`.optout`: the stop list's rules, which every send path above asks (import it as
  ``from django_smsclub.services import optout``);
- :mod:`.rows`, :mod:`.templates`, :mod:`.validation`: what those share.

Read-only queries live in :mod:`django_smsclub.selectors`. The names below are the services'
public face; callers import them from here.
"""

from .campaigns import (
    ALLOWED_ACTIONS,
    RESEND_UNKNOWN_PERMISSION,
    RETRY_STATUSES,
    Action,
    RecipientsResult,
    RefusedRow,
    add_recipients,
    allows,
    campaign_problems,
    cancel_campaign,
    refresh_campaigns,
    require,
    resend_messages,
    retry_failed,
    start_campaign,
)
from .leases import hold_claims, renew_claims
from .pipeline import (
    claim_batch,
    record_outcomes,
    release_claims,
    send_claimed,
    send_due,
    sweep_stale_claims,
)
from .sending import enqueue_send, send_personalized, send_sms
from .templates import placeholders
from .tracking import (
    WINDOW_CLOSED,
    apply_states,
    claim_due_reports,
    fetch_states,
    poll_due,
    poll_now,
    request_poll,
)
from .transitions import Transition, cancel_messages
from .validation import IDEMPOTENCY_KEY_MAX_LENGTH

__all__ = [
    "ALLOWED_ACTIONS",
    "IDEMPOTENCY_KEY_MAX_LENGTH",
    "RESEND_UNKNOWN_PERMISSION",
    "RETRY_STATUSES",
    "WINDOW_CLOSED",
    "Action",
    "RecipientsResult",
    "RefusedRow",
    "Transition",
    "add_recipients",
    "allows",
    "apply_states",
    "campaign_problems",
    "cancel_campaign",
    "cancel_messages",
    "claim_batch",
    "claim_due_reports",
    "enqueue_send",
    "fetch_states",
    "hold_claims",
    "placeholders",
    "poll_due",
    "poll_now",
    "record_outcomes",
    "refresh_campaigns",
    "release_claims",
    "renew_claims",
    "request_poll",
    "require",
    "resend_messages",
    "retry_failed",
    "send_claimed",
    "send_due",
    "send_personalized",
    "send_sms",
    "start_campaign",
    "sweep_stale_claims",
]
