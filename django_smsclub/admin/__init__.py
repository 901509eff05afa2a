"""The Django admin: campaigns a person can build, start and watch; messages; delivery reports.

- :mod:`.campaigns`: the campaign list and form, the list's actions and the button URLs;
- :mod:`.panel`: the panel above a campaign's form (progress, chart or preview, buttons);
- :mod:`.actions`: what the campaign buttons do, as POST views;
- :mod:`.messages`: messages and delivery reports, read-only; resend and cancel messages;
- :mod:`.optout`: the stop list: search, add, remove, import a CSV file;
- :mod:`.balances`: account balances, fetched in the background and cached;
- :mod:`.forms`: the campaign form, and the readers of pasted numbers and CSV files;
- :mod:`.filters`: the list filters by gateway and by campaign;
- :mod:`.webhooks`: webhook endpoints (re-enable, send a test event) and the delivery log.

Django's autodiscovery imports this package, which registers the model admins.
"""

from . import campaigns, messages, optout, webhooks

__all__ = ["campaigns", "messages", "optout", "webhooks"]
