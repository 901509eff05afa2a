"""Delivery by operator: sent, delivered, failed, delivery rate and time-to-deliver percentiles
per operator, for a campaign and for a period, in one grouped query on PostgreSQL (and the
streamed fallback elsewhere)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_smsclub import reports
from django_smsclub.models import Campaign, Message
from django_smsclub.operators import Operator
from django_smsclub.status import Status

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_settings")]

SENT = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)


def message(campaign, operator, status, *, took=None, sent=True, sent_at=SENT, **fields):
    """A message of ``operator`` sent at ``sent_at`` (unless not ``sent``), finished ``took``
    seconds after it (or when it was refused, for one never sent)."""
    finished = None
    if took is not None:
        finished = (sent_at if sent else SENT) + timedelta(seconds=took)
    return Message.objects.create(
        campaign=campaign,
        recipient="380671234567",
        sender="Shop",
        text="Hi",
        gateway="default",
        operator=operator,
        status=status,
        sent_at=sent_at if sent else None,
        finished_at=finished,
        **fields,
    )


@pytest.fixture
def sale():
    campaign = Campaign.objects.create(name="Sale", text="Hi", state=Campaign.State.RUNNING)
    for took in (10, 20, 40):
        message(campaign, Operator.KYIVSTAR, Status.DELIVERED, took=took)
    message(campaign, Operator.KYIVSTAR, Status.UNDELIVERED, took=300)
    message(campaign, Operator.VODAFONE, Status.DELIVERED, took=5)
    message(campaign, Operator.VODAFONE, Status.FAILED, took=0, sent=False)  # refused
    message(campaign, Operator.LIFECELL, Status.QUEUED, sent=False)
    message(campaign, "", Status.DELIVERED, took=60)  # stored before operators were recorded
    message(campaign, Operator.OTHER, Status.UNKNOWN, took=3600)
    return campaign


def by_operator(stats):
    return {row.operator: row for row in stats}


def seconds(row):
    return {
        p: None if t is None else round(t.total_seconds(), 3)
        for p, t in row.time_to_deliver.items()
    }


def check_sale_figures(stats):
    assert [row.operator for row in stats] == [op.value for op in Operator]
    rows = by_operator(stats)
    kyivstar = rows[Operator.KYIVSTAR]
    assert (kyivstar.messages, kyivstar.sent, kyivstar.delivered, kyivstar.failed) == (4, 4, 3, 1)
    assert kyivstar.delivery_rate == 0.75 and kyivstar.delivery_percent == 75.0
    # percentile_cont over 10, 20, 40 s: the median, then linear between 20 and 40.
    assert seconds(kyivstar) == {50: 20.0, 90: 36.0, 95: 38.0}
    vodafone = rows[Operator.VODAFONE]
    assert (vodafone.messages, vodafone.sent, vodafone.delivered, vodafone.failed) == (2, 1, 1, 1)
    assert vodafone.delivery_rate == 1.0
    assert seconds(vodafone) == {50: 5.0, 90: 5.0, 95: 5.0}
    lifecell = rows[Operator.LIFECELL]
    assert (lifecell.messages, lifecell.sent, lifecell.delivered, lifecell.failed) == (1, 0, 0, 0)
    assert lifecell.delivery_rate is None
    assert seconds(lifecell) == {50: None, 90: None, 95: None}
    # The message without an operator counts as other; unknown counts as failed.
    other = rows[Operator.OTHER]
    assert (other.messages, other.sent, other.delivered, other.failed) == (2, 2, 1, 1)
    assert seconds(other) == {50: 60.0, 90: 60.0, 95: 60.0}
    assert other.label == "other" and rows[Operator.VODAFONE].label == "Vodafone Ukraine"


def test_campaign_figures_per_operator(sale):
    check_sale_figures(reports.campaign_operator_stats(sale))


def test_the_streamed_fallback_gives_what_percentile_cont_gives(sale, monkeypatch):
    monkeypatch.setattr(reports, "_has_percentile_cont", lambda database: False)
    check_sale_figures(reports.campaign_operator_stats(sale))


def test_on_postgresql_it_is_one_grouped_query_elsewhere_one_more_for_the_percentiles(sale):
    with CaptureQueriesContext(connection) as queries:
        reports.campaign_operator_stats(sale)
    sql = queries.captured_queries[0]["sql"]
    if connection.vendor == "postgresql":
        assert len(queries.captured_queries) == 1
        assert "PERCENTILE_CONT(0.5) WITHIN GROUP" in sql and "GROUP BY" in sql
    else:
        assert len(queries.captured_queries) == 2 and "GROUP BY" in sql


@pytest.mark.parametrize("count", [1, 2, 7, 100])
def test_percentiles_interpolate_like_percentile_cont_for_any_count(count, monkeypatch):
    campaign = Campaign.objects.create(name="Many", text="Hi")
    times = [(i * 37) % 101 + 1 for i in range(count)]
    for took in times:
        message(campaign, Operator.LIFECELL, Status.DELIVERED, took=took)
    ordered = sorted(times)

    def expected(p):
        k = (count - 1) * p / 100
        low, high = ordered[int(k)], ordered[min(int(k) + 1, count - 1)]
        return round(low + (high - low) * (k - int(k)), 3)

    in_sql = seconds(by_operator(reports.campaign_operator_stats(campaign))[Operator.LIFECELL])
    monkeypatch.setattr(reports, "_has_percentile_cont", lambda database: False)
    streamed = seconds(by_operator(reports.campaign_operator_stats(campaign))[Operator.LIFECELL])
    assert in_sql == streamed == {p: expected(p) for p in reports.PERCENTILES}


def test_a_campaign_without_messages_lists_every_operator_with_zeros():
    campaign = Campaign.objects.create(name="Empty", text="Hi")
    stats = reports.campaign_operator_stats(campaign)
    assert [(row.operator, row.messages, row.delivery_rate) for row in stats] == [
        (op.value, 0, None) for op in Operator
    ]


def test_a_period_holds_the_messages_sent_in_it_and_those_refused_in_it(sale):
    other = Campaign.objects.create(name="Other", text="Hi")
    before, after = SENT - timedelta(days=1), SENT + timedelta(days=1)
    message(other, Operator.KYIVSTAR, Status.DELIVERED, took=1)
    message(other, Operator.KYIVSTAR, Status.DELIVERED, took=1, sent_at=before)
    message(other, Operator.KYIVSTAR, Status.DELIVERED, took=1, sent_at=after)
    message(None, Operator.KYIVSTAR, Status.DELIVERED, took=1)  # outside campaigns

    since, until = SENT - timedelta(hours=1), SENT + timedelta(hours=1)
    rows = by_operator(reports.period_operator_stats(since, until))
    # The sale's four plus the two sent in the hour; the refused Vodafone one counts by when
    # it was refused; the queued lifecell one is in no period.
    assert rows[Operator.KYIVSTAR].messages == 6
    assert rows[Operator.VODAFONE].messages == 2
    assert rows[Operator.LIFECELL].messages == 0

    only_sale = by_operator(reports.period_operator_stats(since, until, campaign=sale))
    assert only_sale[Operator.KYIVSTAR].messages == 4
    # The end is not included, the start is.
    assert reports.period_messages(SENT, SENT + timedelta(seconds=1)).count() == 10
    assert reports.period_messages(SENT - timedelta(hours=1), SENT).count() == 0
