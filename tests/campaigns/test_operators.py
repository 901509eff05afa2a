"""Each message knows its operator: read from phonenumbers' carrier data, stored at queue time
on every path that stores messages."""

import phonenumbers
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from phonenumbers import carrier
from phonenumbers.carrierdata import CARRIER_DATA

from django_smsclub import send_personalized, send_sms, services
from django_smsclub.models import Campaign, Message
from django_smsclub.operators import Operator, operator_of, operator_of_carrier
from django_smsclub.services import rows as row_storage
from django_smsclub.status import Status

pytestmark = pytest.mark.usefixtures("pipeline_settings")

# The networks' own prefixes (codes Ukraine's regulator gave them); each case runs only where
# the installed phonenumbers knows the prefix's carrier.
NETWORKS = [
    ("67", Operator.KYIVSTAR),
    ("68", Operator.KYIVSTAR),
    ("96", Operator.KYIVSTAR),
    ("97", Operator.KYIVSTAR),
    ("98", Operator.KYIVSTAR),
    ("39", Operator.KYIVSTAR),
    ("77", Operator.KYIVSTAR),
    ("50", Operator.VODAFONE),
    ("66", Operator.VODAFONE),
    ("95", Operator.VODAFONE),
    ("99", Operator.VODAFONE),
    ("75", Operator.VODAFONE),
    ("63", Operator.LIFECELL),
    ("73", Operator.LIFECELL),
    ("93", Operator.LIFECELL),
    ("91", Operator.OTHER),  # 3Mob (TriMob)
    ("92", Operator.OTHER),  # PEOPLEnet
    ("94", Operator.OTHER),  # Intertelecom
]


def carrier_known(number):
    return bool(carrier.name_for_number(phonenumbers.parse("+" + number), "en"))


@pytest.mark.parametrize(("prefix", "expected"), NETWORKS)
def test_a_number_of_each_network_gets_that_operator(prefix, expected):
    number = f"380{prefix}1234567"
    if not carrier_known(number):
        pytest.skip(f"the installed phonenumbers knows no carrier of +380 {prefix}")
    assert operator_of(number) == expected
    assert operator_of("+" + number) == expected


@pytest.mark.parametrize(
    "number",
    [
        "380441234567",  # a Kyiv landline
        "447400123456",  # Vodafone UK: a Vodafone, not Vodafone Ukraine
        "48601234567",  # Poland
        "",
        "380",
        "38067abc4567",
    ],
)
def test_a_number_outside_ukraines_mobile_networks_is_other(number):
    assert operator_of(number) == Operator.OTHER


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Kyivstar", Operator.KYIVSTAR),
        ("Vodafone", Operator.VODAFONE),
        ("MTS", Operator.VODAFONE),  # Vodafone Ukraine's name until 2015
        ("lifecell", Operator.LIFECELL),
        ("life:)", Operator.LIFECELL),
        ("Astelit", Operator.LIFECELL),
        ("3Mob", Operator.OTHER),
        ("TriMob", Operator.OTHER),
        ("Intertelecom", Operator.OTHER),
        ("PEOPLEnet", Operator.OTHER),
        ("", Operator.OTHER),
    ],
)
def test_carrier_names_are_matched_by_name(name, expected):
    assert operator_of_carrier(name) == expected


def test_every_ukrainian_range_of_the_carrier_data_agrees_with_phonenumbers():
    """The look-ups shared per prefix give what phonenumbers gives for the number itself."""
    prefixes = [p for p in CARRIER_DATA if p.startswith("380")]
    assert prefixes
    for prefix in prefixes:
        for tail in ("0000000000", "5555555555", "9999999999"):
            number = (prefix + tail)[:12]
            parsed = phonenumbers.parse("+" + number)
            if not phonenumbers.is_valid_number(parsed):
                continue
            expected = operator_of_carrier(carrier.name_for_number(parsed, "en"))
            assert operator_of(number) == expected, number


@pytest.mark.django_db
def test_send_sms_and_send_personalized_store_each_operator():
    send_sms(["0671234567", "0501234567", "0631234567", "0441234567"], "Hello")
    send_personalized([("0931234567", "Hi Ann"), ("+380 99 123 45 67", "Hi Ivan")])
    stored = dict(Message.objects.values_list("recipient", "operator"))
    assert stored == {
        "380671234567": Operator.KYIVSTAR,
        "380501234567": Operator.VODAFONE,
        "380631234567": Operator.LIFECELL,
        "380441234567": Operator.OTHER,
        "380931234567": Operator.LIFECELL,
        "380991234567": Operator.VODAFONE,
    }


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["Sale today", "Hi {name}, sale today"])
def test_campaign_recipients_get_their_operator_with_or_without_placeholders(text):
    campaign = Campaign.objects.create(name="Sale", text=text)
    rows = [("0671234567", {"name": "Ann"}), ("0501234567", {"name": "Ivan"})]
    campaign.add_recipients(rows if "{" in text else [number for number, _ in rows])
    assert dict(campaign.messages.values_list("recipient", "operator")) == {
        "380671234567": Operator.KYIVSTAR,
        "380501234567": Operator.VODAFONE,
    }


@pytest.mark.django_db
def test_insert_messages_stores_operators_on_this_database_path():
    """COPY on PostgreSQL, bulk_create elsewhere: the same operators."""
    campaign = Campaign.objects.create(name="Sale", text="Hi")
    rows = [(f"380{prefix}1234567", "Hi", 1) for prefix in ("67", "50", "63", "44")]
    with CaptureQueriesContext(connection) as queries:
        row_storage.insert_messages(
            ("recipient", "text", "parts"),
            rows,
            {"campaign_id": campaign.pk, "sender": "Shop", "gateway": "default"},
        )
    if connection.vendor == "postgresql":
        assert queries.captured_queries[-1]["sql"].startswith("COPY ")
    assert list(campaign.messages.order_by("pk").values_list("operator", flat=True)) == [
        Operator.KYIVSTAR,
        Operator.VODAFONE,
        Operator.LIFECELL,
        Operator.OTHER,
    ]


@pytest.mark.django_db
def test_insert_messages_keeps_an_operator_it_is_given():
    campaign = Campaign.objects.create(name="Sale", text="Hi")
    row_storage.insert_messages(
        ("recipient", "text", "parts", "operator"),
        [("380671234567", "Hi", 1, Operator.OTHER)],
        {"campaign_id": campaign.pk, "sender": "Shop", "gateway": "default"},
    )
    assert campaign.messages.get().operator == Operator.OTHER


@pytest.mark.django_db
def test_retries_and_resends_carry_the_operator_and_fill_in_one_an_old_row_lacks():
    campaign = Campaign.objects.create(name="Sale", text="Sale today")
    campaign.add_recipients(["0671234567", "0501234567"])
    kyivstar = campaign.messages.get(recipient="380671234567")
    vodafone = campaign.messages.get(recipient="380501234567")
    # A message stored before operators were recorded has none.
    Message.objects.filter(pk=vodafone.pk).update(operator="")
    campaign.messages.update(status=Status.UNDELIVERED)
    Campaign.objects.filter(pk=campaign.pk).update(state=Campaign.State.DONE)

    assert services.retry_failed(campaign) == 2
    assert Message.objects.get(retry_of=kyivstar).operator == Operator.KYIVSTAR
    assert Message.objects.get(retry_of=vodafone).operator == Operator.VODAFONE

    [single] = send_sms("0631234567", "Hello")
    Message.objects.filter(pk=single.pk).update(status=Status.FAILED)
    assert services.resend_messages(Message.objects.filter(pk=single.pk)) == 1
    assert Message.objects.get(retry_of=single).operator == Operator.LIFECELL
