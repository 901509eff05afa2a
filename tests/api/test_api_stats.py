"""The API's delivery by operator (a campaign's, a period's) and a campaign's CSV export: the
figures, the parameters checked naming the bad value, and who may see what."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from django_smsclub.models import Campaign, Message
from django_smsclub.operators import Operator
from django_smsclub.status import Status
from tests.api.test_api import API, client_for, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_settings")]

SENT = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)
PERIOD = {"since": "2027-03-01T09:00:00Z", "until": "2027-03-01T11:00:00Z"}


def delivered(user, campaign=None, operator=Operator.KYIVSTAR, took=10, sent_at=SENT, **fields):
    return Message.objects.create(
        campaign=campaign,
        recipient="380671234567",
        sender="Shop",
        text="Hi",
        gateway="default",
        created_by=user,
        operator=operator,
        status=fields.pop("status", Status.DELIVERED),
        sent_at=sent_at,
        finished_at=sent_at + timedelta(seconds=took),
        **fields,
    )


@pytest.fixture
def owner():
    return make_user("owner", "view_campaign", "view_message")


@pytest.fixture
def sale(owner):
    campaign = Campaign.objects.create(name="Sale", text="Hi", created_by=owner)
    for took in (10, 20, 40):
        delivered(owner, campaign, took=took)
    delivered(owner, campaign, operator=Operator.VODAFONE, status=Status.UNDELIVERED)
    return campaign


def by_operator(body):
    return {row["operator"]: row for row in body["operators"]}


def test_a_campaigns_figures_per_operator(owner, sale):
    response = client_for(owner).get(API + f"campaigns/{sale.pk}/operators/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["campaign"], body["since"], body["until"]) == (sale.pk, None, None)
    assert [row["operator"] for row in body["operators"]] == [op.value for op in Operator]
    kyivstar = by_operator(body)["kyivstar"]
    assert kyivstar == {
        "operator": "kyivstar",
        "name": "Kyivstar",
        "messages": 3,
        "sent": 3,
        "delivered": 3,
        "failed": 0,
        "delivery_rate": 1.0,
        "time_to_deliver": {"p50": 20.0, "p90": 36.0, "p95": 38.0},
    }
    vodafone = by_operator(body)["vodafone"]
    assert (vodafone["failed"], vodafone["delivery_rate"]) == (1, 0.0)
    assert vodafone["time_to_deliver"] == {"p50": None, "p90": None, "p95": None}
    assert by_operator(body)["lifecell"]["delivery_rate"] is None


def test_a_campaign_of_someone_else_is_not_found_and_staff_see_every_one(sale):
    stranger = make_user("stranger", "view_campaign", "view_message")
    assert client_for(stranger).get(API + f"campaigns/{sale.pk}/operators/").status_code == 404
    staff = make_user("staff", "view_campaign", "view_message", staff=True)
    assert client_for(staff).get(API + f"campaigns/{sale.pk}/operators/").status_code == 200


@pytest.mark.parametrize(
    ("perms", "path", "allowed"),
    [
        (["view_campaign"], "campaigns/{id}/operators/", True),
        (["view_message"], "campaigns/{id}/operators/", False),
        (["view_message"], "stats/operators/", True),
        (["view_campaign"], "stats/operators/", False),
        (["view_campaign", "view_message"], "campaigns/{id}/export/", True),
        (["view_campaign"], "campaigns/{id}/export/", False),
        (["view_message"], "campaigns/{id}/export/", False),
    ],
)
def test_each_endpoint_needs_its_view_permissions(perms, path, allowed):
    user = make_user("limited", *perms)
    campaign = Campaign.objects.create(name="Mine", text="Hi", created_by=user)
    response = client_for(user).get(API + path.format(id=campaign.pk), PERIOD)
    assert (response.status_code != 403) == allowed, response.content


@pytest.mark.parametrize(
    "path", ["campaigns/1/operators/", "stats/operators/", "campaigns/1/export/"]
)
def test_anonymous_requests_are_refused(path):
    response = client_for(None).get(API + path, PERIOD)
    assert response.status_code in (401, 403)
    assert response["Content-Type"] == "application/json"


def test_a_period_counts_the_users_own_messages_sent_in_it(owner, sale):
    delivered(owner, operator=Operator.LIFECELL)  # outside campaigns, in the period
    delivered(owner, operator=Operator.LIFECELL, sent_at=SENT - timedelta(days=1))
    delivered(make_user("stranger"), operator=Operator.LIFECELL)  # not the owner's

    body = client_for(owner).get(API + "stats/operators/", PERIOD).json()

    assert (body["since"], body["until"], body["campaign"]) == (
        "2027-03-01T09:00:00Z",
        "2027-03-01T11:00:00Z",
        None,
    )
    rows = by_operator(body)
    assert (rows["kyivstar"]["messages"], rows["lifecell"]["messages"]) == (3, 1)

    staff = make_user("staff", "view_message", staff=True)
    assert (
        by_operator(client_for(staff).get(API + "stats/operators/", PERIOD).json())["lifecell"][
            "messages"
        ]
        == 2
    )

    only_sale = client_for(owner).get(API + "stats/operators/", {**PERIOD, "campaign": sale.pk})
    assert by_operator(only_sale.json())["lifecell"]["messages"] == 0


def test_until_defaults_to_now(owner, sale):
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    body = client_for(owner).get(API + "stats/operators/", {"since": since})
    assert body.status_code == 200
    until = datetime.fromisoformat(body.json()["until"])
    assert abs((until - datetime.now(UTC)).total_seconds()) < 60


@pytest.mark.parametrize(
    ("query", "field", "named"),
    [
        ({}, "since", "required"),
        ({"since": "yesterday"}, "since", "yesterday"),
        ({**PERIOD, "until": "2027-03-01T08:00:00Z"}, "until", "2027-03-01T08:00:00"),
        ({**PERIOD, "campaign": "abc"}, "campaign", "abc"),
        ({**PERIOD, "campaign": "0"}, "campaign", "0"),
        ({**PERIOD, "campaign": "999999"}, "campaign", "999999"),
    ],
)
def test_bad_period_parameters_are_refused_naming_the_value(owner, query, field, named):
    response = client_for(owner).get(API + "stats/operators/", query)
    assert response.status_code == 400
    assert named in " ".join(response.json()[field])


def test_a_campaign_of_someone_else_is_refused_as_a_period_filter(owner):
    theirs = Campaign.objects.create(name="Theirs", text="Hi", created_by=make_user("stranger"))
    response = client_for(owner).get(API + "stats/operators/", {**PERIOD, "campaign": theirs.pk})
    assert response.status_code == 400
    assert str(theirs.pk) in response.json()["campaign"][0]


def test_the_export_streams_every_message_as_csv(owner, sale):
    Message.objects.filter(campaign=sale, operator=Operator.VODAFONE).update(error="=1+2")
    response = client_for(owner).get(API + f"campaigns/{sale.pk}/export/")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    assert not body.startswith("\ufeff")  # for programs: no byte order mark
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][:4] == ["id", "number", "operator", "status"]
    assert [row[2] for row in rows[1:]] == ["kyivstar", "kyivstar", "kyivstar", "vodafone"]
    assert rows[-1][4] == "'=1+2"


@pytest.mark.parametrize(("query", "accept"), [({"format": "csv"}, None), ({}, "text/csv")])
def test_the_export_answers_a_client_that_asks_for_csv(owner, sale, query, accept):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = client_for(owner).get(API + f"campaigns/{sale.pk}/export/", query, **headers)
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"id,number,")


def test_an_export_of_a_campaign_of_someone_else_is_not_found_in_json(sale):
    stranger = make_user("stranger", "view_campaign", "view_message")
    response = client_for(stranger).get(
        API + f"campaigns/{sale.pk}/export/", HTTP_ACCEPT="text/csv"
    )
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]
