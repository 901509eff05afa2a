"""Sync the webhook endpoints of SMSCLUB["WEBHOOKS"], list them, and deliver what is due."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, Q

from ...exceptions import ConfigurationError
from ...models import WebhookDelivery, WebhookEndpoint
from ...services import webhooks


class Command(BaseCommand):
    help = (
        "Bring the webhook endpoints in step with SMSCLUB['WEBHOOKS'] and list every endpoint "
        "with its pending deliveries; --deliver also sends the due ones now (what the "
        "deliver_webhooks task does)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--deliver", action="store_true", help="deliver the due deliveries now, then list"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = webhooks.sync_endpoints()
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from None
        for label, names in (
            ("created", result.created),
            ("updated", result.updated),
            ("turned off (gone from the settings)", result.removed),
            ("skipped (invalid: see manage.py check)", result.invalid),
        ):
            if names:
                self.stdout.write(f"{label}: {', '.join(names)}")
        if options["deliver"]:
            made = webhooks.deliver_due()
            self.stdout.write(f"attempts made: {made}")
        pending = Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.PENDING))
        endpoints = WebhookEndpoint.objects.annotate(pending=pending).order_by("name")
        if not endpoints:
            self.stdout.write("no webhook endpoints")
        for endpoint in endpoints:
            if endpoint.disabled_at is not None:
                state = f"DISABLED at {endpoint.disabled_at:%Y-%m-%d %H:%M} UTC: "
                state += endpoint.disabled_reason
            else:
                state = "active" if endpoint.is_active else "off"
            origin = "settings" if endpoint.from_settings else "admin"
            self.stdout.write(
                f"{endpoint.name} ({origin}) {endpoint.url} [{', '.join(endpoint.events)}] "
                f"pending {endpoint.pending}, {state}"
            )
