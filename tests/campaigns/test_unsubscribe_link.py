"""Unsubscribe links: the short signed token, ``{unsubscribe_url}`` in campaign texts (counted
in the parts), the setting and its checks, and the page the link opens (GET asks, POST opts out;
a token not ours is a 404 that does nothing; a replay is harmless; nothing tells one number's
state from another's)."""

import re
import string

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ValidationError
from django.test import Client

from django_smsclub import services, unsubscribe
from django_smsclub.exceptions import ConfigurationError, InvalidMessage
from django_smsclub.models import Campaign, OptOut
from django_smsclub.services import optout, templates
from django_smsclub.text import count_parts
from tests.support.settings import smsclub_settings

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pipeline_settings")]

BASE = "https://shop.example/u/"
NUMBER = "380501234567"


@pytest.fixture(autouse=True)
def links(settings, pipeline_settings):
    settings.SMSCLUB = {**pipeline_settings, "UNSUBSCRIBE_URL": BASE}
    return settings.SMSCLUB


# --- the token ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "length"),
    [("3805012345", 14), (NUMBER, 15), ("380501234567890", 17), ("999999999999999", 17)],
)
def test_a_token_is_short_and_reads_back_to_its_number(number, length):
    token = unsubscribe.make_token(number)

    assert len(token) == length
    assert set(token) <= set(string.ascii_letters + string.digits)
    assert unsubscribe.read_token(token) == number
    assert unsubscribe.MIN_TOKEN_LENGTH <= length <= unsubscribe.MAX_TOKEN_LENGTH


def test_every_changed_character_is_refused():
    token = unsubscribe.make_token(NUMBER)
    alphabet = unsubscribe.ALPHABET

    tampered = [
        token[:i] + char + token[i + 1 :]
        for i in range(len(token))
        for char in alphabet
        if char != token[i]
    ]

    assert all(unsubscribe.read_token(t) is None for t in tampered)


@pytest.mark.parametrize(
    "token",
    ["", "abc", "0" + "a" * 14, "a" * 40, "abc-def_ghij!kl", "7zzzzzzzzzzzzz", "ÄÖÜäöü789abcdef"],
)
def test_a_token_that_is_none_of_ours_is_refused(token):
    assert unsubscribe.read_token(token) is None


def test_another_secret_key_makes_other_tokens_and_a_fallback_keeps_old_links_working(settings):
    old = unsubscribe.make_token(NUMBER)
    settings.SECRET_KEY = "a new key for the project, rotated"

    assert unsubscribe.make_token(NUMBER) != old
    assert unsubscribe.read_token(old) is None
    settings.SECRET_KEY_FALLBACKS = ["testproject-insecure-key-for-development-only"]
    assert unsubscribe.read_token(old) == NUMBER


# --- in campaign texts ----------------------------------------------------------------------


def test_each_recipient_gets_a_link_of_their_own_counted_in_the_parts():
    # 150 characters of Latin text: one part alone, two with the link.
    text = "x" * 148 + ": {unsubscribe_url}"
    campaign = Campaign.objects.create(name="Sale", text=text, sender="Shop")

    result = campaign.add_recipients(["0501234567", "0671234567"])

    assert result.added == 2
    for message in campaign.messages.all():
        link = re.search(r"https://\S+", message.text)[0]
        assert link == BASE + unsubscribe.make_token(message.recipient)
        assert unsubscribe.read_token(link.removeprefix(BASE)) == message.recipient
        assert len(message.text) == 150 + len(BASE) + 15
        assert message.parts == count_parts(message.text) == 2


def test_the_link_is_filled_in_beside_the_recipients_own_values():
    campaign = Campaign.objects.create(name="Sale", text="Hi {name}. Stop: {unsubscribe_url}")

    campaign.add_recipients([("0501234567", {"name": "Olena", "unsubscribe_url": "evil.example"})])

    assert campaign.messages.get().text == f"Hi Olena. Stop: {unsubscribe.url_for(NUMBER)}"
    # A reserved name: no CSV column is asked for it.
    assert services.placeholders(campaign.text) == (["name"], None)


def test_without_the_setting_the_text_is_refused_when_saved_and_when_recipients_are_added(
    settings, links
):
    settings.SMSCLUB = {**links, "UNSUBSCRIBE_URL": None}
    campaign = Campaign(name="Sale", text="Sale! Stop: {unsubscribe_url}", sender="Shop")

    with pytest.raises(ValidationError, match=r"SMSCLUB\['UNSUBSCRIBE_URL'\] is not set"):
        campaign.full_clean()
    campaign.save()
    with pytest.raises(InvalidMessage, match="UNSUBSCRIBE_URL"):
        campaign.add_recipients(["0501234567"])
    assert not campaign.messages.exists()


def test_a_text_too_long_once_the_link_is_in_is_refused_when_saved():
    campaign = Campaign(name="Sale", text="x" * 1050 + " {unsubscribe_url}", sender="Shop")

    problems = services.campaign_problems(campaign)

    assert len(problems) == 1 and "1071" in problems[0]


@pytest.mark.parametrize(
    "value",
    ["https://shop.example/u", "ftp://shop.example/u/", "shop/u/", "https://shop.example/a b/", 7],
)
def test_a_bad_unsubscribe_url_is_a_check_error(settings, links, value):
    settings.SMSCLUB = {**links, "UNSUBSCRIBE_URL": value}

    errors = [e for e in run_checks() if e.id == "django_smsclub.E006"]

    assert len(errors) == 1 and "UNSUBSCRIBE_URL" in errors[0].msg
    with pytest.raises(ConfigurationError):
        unsubscribe.base_url()


@pytest.mark.parametrize(
    "value", ["https://shop.example/u/", "shop.ua/", "http://localhost:8000/u/"]
)
def test_a_web_address_ending_in_a_slash_is_taken_with_or_without_its_scheme(
    settings, links, value
):
    settings.SMSCLUB = {**links, "UNSUBSCRIBE_URL": value}

    assert not [e for e in run_checks() if e.id == "django_smsclub.E006"]
    assert unsubscribe.url_for(NUMBER).startswith(value)
    assert templates.with_longest_link("{unsubscribe_url}")[0] == value + "z" * 17


# --- the page -------------------------------------------------------------------------------


def page(token=None):
    return f"/u/{token or unsubscribe.make_token(NUMBER)}"


def confirm(client, token=None):
    """GET the page, then POST its form with the CSRF token it carries."""
    got = client.get(page(token))
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', got.content.decode())[1]
    return client.post(page(token), {"csrfmiddlewaretoken": csrf})


def test_get_asks_and_changes_nothing_post_opts_the_number_out_for_marketing():
    client = Client(enforce_csrf_checks=True)

    asked = client.get(page(), HTTP_ACCEPT_LANGUAGE="en")
    assert asked.status_code == 200
    assert b"Stop marketing messages to the number ending in 67?" in asked.content
    assert not OptOut.objects.exists()

    done = confirm(client)
    assert done.status_code == 200
    assert b"will get no more marketing messages" in done.content
    entry = OptOut.objects.get()
    assert (entry.phone, entry.scope, entry.source) == (NUMBER, "marketing", "link")


def test_the_page_shows_only_the_last_two_digits_and_is_neither_cached_nor_indexed():
    response = Client().get(page() + "/")

    body = response.content.decode()
    assert "380501234567" not in body and "1234567" not in body and "ending in 67" in body
    assert "no-store" in response["Cache-Control"]
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize(
    ("language", "asked", "done"),
    [
        ("uk", "Більше не надсилати рекламні повідомлення", "Ви відписалися"),
        ("ru", "Больше не присылать рекламные сообщения", "Вы отписались"),
        ("en", "Stop marketing messages", "You are unsubscribed"),
    ],
)
def test_the_page_speaks_the_language_of_the_request(language, asked, done):
    client = Client(HTTP_ACCEPT_LANGUAGE=language)

    assert asked in client.get(page()).content.decode()
    assert done in confirm(client).content.decode()
    assert client.get(page())["Content-Language"] == language


def test_a_post_without_the_csrf_token_is_refused_and_does_nothing():
    response = Client(enforce_csrf_checks=True).post(page())

    assert response.status_code == 403
    assert not OptOut.objects.exists()


def test_a_tampered_token_is_a_404_that_does_nothing():
    token = unsubscribe.make_token(NUMBER)
    other = token[:-1] + ("a" if token[-1] != "a" else "b")
    client = Client()

    assert client.get(page(other)).status_code == 404
    assert client.post(page(other)).status_code == 404
    assert client.post("/u/not-a-token").status_code == 404
    assert not OptOut.objects.exists()


def test_a_replayed_post_is_harmless_and_never_narrows_scope_all():
    optout.opt_out(NUMBER, OptOut.Scope.ALL, source="admin", reason="by phone")
    client = Client()

    first, again = confirm(client), confirm(client)

    assert first.status_code == again.status_code == 200
    entry = OptOut.objects.get()
    assert (entry.scope, entry.source, entry.reason) == ("all", "admin", "by phone")


def test_the_page_reads_the_same_whether_the_number_was_on_the_list_or_not():
    other = "380671234567"
    optout.opt_out(other, OptOut.Scope.ALL)

    def shown(number):
        body = Client().get(page(unsubscribe.make_token(number))).content.decode()
        return re.sub(r'value="[^"]+"', "", body).replace(number[-2:], "##")

    assert shown(NUMBER) == shown(other)


def test_only_get_head_and_post_are_answered():
    assert Client().put(page()).status_code == 405
    assert Client().head(page()).status_code == 200


def test_the_test_project_serves_the_page_at_its_setting(settings):
    settings.SMSCLUB = smsclub_settings(UNSUBSCRIBE_URL="http://testserver/u/")
    url = unsubscribe.url_for(NUMBER)

    assert Client().get(url).status_code == 200
