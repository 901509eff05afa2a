"""Campaigns, messages and the provider's delivery reports.

A :class:`Message` is one text to one recipient; a :class:`DeliveryReport` is one SMS part the
provider acknowledged with an SMSC ID. A message's status is the aggregate of its parts'
reports (see :func:`django_smsclub.status.aggregate`). The domain operations live in
:mod:`django_smsclub.services`; the methods here are thin doors into it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..operators import Operator
from ..status import FINAL_STATUSES, Status

__all__ = ["Campaign", "DeliveryReport", "Message"]

#: Statuses a message is in until the provider's network settles its fate.
PENDING_STATUSES: frozenset[str] = frozenset(Status.values) - FINAL_STATUSES

#: Claim order: a message with a lower priority is claimed first. Messages outside campaigns
#: (``send_sms``, ``send_personalized``, the API's) get PRIORITY_MESSAGE unless told otherwise,
#: campaigns PRIORITY_CAMPAIGN: a login code never waits behind a campaign's backlog.
PRIORITY_MESSAGE = 0
PRIORITY_CAMPAIGN = 100
PRIORITY_MAX = 32767

RAW_STATUS_MAX_LENGTH = 255
ERROR_MAX_LENGTH = 2000


def _services() -> Any:
    """:mod:`django_smsclub.services`, handed over by ``AppConfig.ready()``: the services import
    the models, so the models reach them through the app's config instead of an import."""
    config: Any = apps.get_app_config("django_smsclub")
    return config.services


class MessageQuerySet(models.QuerySet):
    def status_counts(self) -> dict[str, int]:
        """Messages per status (every status present, zeros included), in one grouped query."""
        counts = dict.fromkeys(Status.values, 0)
        counts.update(dict(self.order_by().values_list("status").annotate(n=Count("pk"))))
        return counts


class CampaignQuerySet(models.QuerySet):
    def with_status_counts(self) -> CampaignQuerySet:
        """Annotate ``count_<status>`` for every status and ``count_total``, in one query."""
        counts = {
            f"count_{status}": Count("messages", filter=Q(messages__status=status))
            for status in Status.values
        }
        return self.annotate(count_total=Count("messages"), **counts)


class Campaign(models.Model):
    """One text (with ``{placeholders}`` for personal texts) to many recipients."""

    class State(models.TextChoices):
        DRAFT = "draft", _("draft")
        SCHEDULED = "scheduled", _("scheduled")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        CANCELLED = "cancelled", _("cancelled")

    name = models.CharField(_("name"), max_length=200)
    sender = models.CharField(
        _("sender"),
        max_length=11,
        blank=True,
        help_text=_("Alpha-name; empty means the gateway's SENDER."),
    )
    text = models.TextField(
        _("text"), help_text=_("May hold {placeholders} filled from each recipient's values.")
    )
    gateway = models.CharField(
        _("gateway"),
        max_length=64,
        blank=True,
        help_text=_("A key of SMSCLUB['GATEWAYS']; empty means the default gateway."),
    )
    state = models.CharField(
        _("state"), max_length=12, choices=State.choices, default=State.DRAFT, db_index=True
    )
    send_at = models.DateTimeField(
        _("send at"), null=True, blank=True, help_text=_("Empty means as soon as it starts.")
    )
    send_window_start = models.TimeField(
        _("send window opens"),
        null=True,
        blank=True,
        help_text=_("Local time; empty means the SEND_WINDOW setting."),
    )
    send_window_end = models.TimeField(
        _("send window closes"),
        null=True,
        blank=True,
        help_text=_("Local time; empty means the SEND_WINDOW setting."),
    )
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        blank=True,
        help_text=_("For the send window (e.g. Europe/Kyiv); empty: the TIME_ZONE setting."),
    )
    priority = models.PositiveSmallIntegerField(
        _("priority"),
        default=PRIORITY_CAMPAIGN,
        help_text=_("Lower is sent first; single messages have 0."),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        problems = _services().campaign_problems(self)
        if problems:
            raise ValidationError(problems)

    def status_counts(self) -> dict[str, int]:
        """Messages per status (every status present, zeros included), in one grouped query."""
        return self.messages.status_counts()

    def add_recipients(
        self,
        recipients: Iterable[Any],
        *,
        skip_invalid: bool = False,
        chunk_size: int = 5000,
    ) -> Any:
        """Add numbers, or (number, values) pairs for the text's placeholders; returns a
        :class:`django_smsclub.services.RecipientsResult`."""
        return _services().add_recipients(
            self, recipients, skip_invalid=skip_invalid, chunk_size=chunk_size
        )

    def start(self) -> None:
        """Release the messages: now, or at ``send_at``."""
        _services().start_campaign(self)

    def cancel(self) -> int:
        """Cancel every message not yet claimed by a worker; return how many."""
        return int(_services().cancel_campaign(self))

    def retry_failed(self, statuses: Iterable[str] | None = None) -> int:
        """Send anew each message that surely did not arrive; return how many were queued."""
        return int(_services().retry_failed(self, statuses))


class Message(models.Model):
    """One SMS text to one recipient, from queued to its final status."""

    campaign = models.ForeignKey(
        Campaign,
        verbose_name=_("campaign"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="messages",
        # The (campaign, status) index below serves every lookup by campaign.
        db_index=False,
    )
    recipient = models.CharField(_("recipient"), max_length=20)
    sender = models.CharField(_("sender"), max_length=11)
    text = models.TextField(_("text"))
    gateway = models.CharField(_("gateway"), max_length=64)
    parts = models.PositiveSmallIntegerField(_("parts"), default=1)
    operator = models.CharField(
        _("operator"),
        max_length=16,
        choices=Operator.choices,
        blank=True,
        help_text=_("The recipient's mobile network, from the number's prefix when queued."),
    )
    respect_window = models.BooleanField(
        _("respects the send window"),
        default=False,
        help_text=_("Sent only inside the send window (always so for campaign messages)."),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.QUEUED
    )
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveSmallIntegerField(
        _("attempts"), default=0, help_text=_("Send requests made for it.")
    )
    priority = models.PositiveSmallIntegerField(
        _("priority"), default=PRIORITY_MESSAGE, help_text=_("Lower is claimed first.")
    )
    next_attempt_at = models.DateTimeField(
        _("next attempt at"),
        null=True,
        blank=True,
        help_text=_("Not sent before this; empty until its campaign starts."),
    )
    idempotency_key = models.CharField(
        _("idempotency key"),
        max_length=255,
        blank=True,
        help_text=_("Unique when set: a repeat returns the first call's messages."),
    )
    metadata = models.JSONField(_("metadata"), default=dict, blank=True, encoder=DjangoJSONEncoder)
    retry_of = models.OneToOneField(
        "self",
        verbose_name=_("retry of"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="retry",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    #: When its worker took or last renewed the claim (its lease runs STALE_SENDING_AFTER).
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        permissions = [
            # Resending a message of unknown fate may reach the person twice: a separate right.
            ("resend_unknown", _("Can resend a message of unknown fate (may duplicate it)")),
        ]
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="smsclub_msg_idempotency_key",
            ),
        ]
        indexes = [
            # claim_batch: the due queued messages of one gateway, most urgent first.
            models.Index(
                fields=["gateway", "priority", "next_attempt_at", "id"],
                condition=Q(status=Status.QUEUED),
                name="smsclub_msg_queued_priority",
            ),
            # sweep_stale_claims: claims older than STALE_SENDING_AFTER.
            models.Index(
                fields=["claimed_at", "id"],
                condition=Q(status=Status.SENDING),
                name="smsclub_msg_sending_claimed",
            ),
            # Campaign counts, cancel and retry_failed.
            models.Index(fields=["campaign", "status"], name="smsclub_msg_campaign_status"),
        ]

    def __str__(self) -> str:
        return f"{self.recipient}: {self.status}"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class DeliveryReport(models.Model):
    """One SMS part the provider acknowledged, and what the network said of it."""

    message = models.ForeignKey(
        Message,
        verbose_name=_("message"),
        on_delete=models.CASCADE,
        related_name="reports",
        # The unique (message, part) index serves every lookup by message.
        db_index=False,
    )
    part = models.PositiveSmallIntegerField(_("part"))
    smsc_id = models.CharField(_("SMSC ID"), max_length=64)
    gateway = models.CharField(_("gateway"), max_length=64)
    raw_status = models.CharField(
        _("provider status"),
        max_length=RAW_STATUS_MAX_LENGTH,
        blank=True,
        help_text=_("The provider's word, verbatim."),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.SENT
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    changed_at = models.DateTimeField(_("changed"), default=timezone.now)
    next_poll_at = models.DateTimeField(_("next poll at"), null=True, blank=True)
    polls = models.PositiveIntegerField(_("polls"), default=0)

    class Meta:
        verbose_name = _("delivery report")
        verbose_name_plural = _("delivery reports")
        ordering = ["message_id", "part"]
        constraints = [
            models.UniqueConstraint(fields=["message", "part"], name="smsclub_report_message_part"),
        ]
        indexes = [
            # poll_due: the reports of one gateway that are not final and are due.
            models.Index(
                fields=["gateway", "next_poll_at", "id"],
                condition=Q(status=Status.SENT),
                name="smsclub_report_due",
            ),
            # apply_states: SMSC IDs from a status reply or an SMPP receipt.
            models.Index(fields=["gateway", "smsc_id"], name="smsclub_report_smsc"),
        ]

    def __str__(self) -> str:
        # Read by people (the admin's report rows): "Part 1: delivered (DELIVRD)".
        status = str(Status(self.status).label) if self.status in Status.values else self.status
        label = _("Part %(part)s: %(status)s") % {"part": self.part, "status": status}
        return f"{label} ({self.raw_status})" if self.raw_status else str(label)
