"""The claims of SECURITY.rst that no other test proves.

The credentials are a password and a token that URL-quoting, form encoding (a space becomes
``+``), XML escaping and JSON each write differently; every way they can be written is looked
for wherever they must never be: log records at DEBUG on the root logger, exception messages
and reprs, outcomes, the gateway's repr, the database, Celery messages and results, the admin's
pages, the API's answers and schema, and the emulator's request log.
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape as xml_escape

import pytest
import requests
from celery.signals import before_task_publish, task_postrun, task_prerun
from django.apps import apps
from django.contrib.admin import site as admin_site
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.views.debug import SafeExceptionReporterFilter, technical_500_response
from lxml import etree
from rest_framework.test import APIClient

from django_smsclub import send_sms, services, tasks
from django_smsclub.emulator import Emulator
from django_smsclub.emulator.server import HOST
from django_smsclub.exceptions import (
    AmbiguousSend,
    AuthenticationError,
    GatewayError,
    GatewayUnavailable,
    ProviderRefused,
)
from django_smsclub.gateways import Outgoing, get_gateway
from django_smsclub.gateways.http import HttpGateway
from django_smsclub.gateways.json import JsonGateway
from django_smsclub.gateways.soap import DEFAULT_WSDL, ZEEP_SETTINGS, SoapGateway
from django_smsclub.gateways.soap_envelope import decode as soap_decode
from django_smsclub.gateways.transport import MAX_REPLY_BYTES
from django_smsclub.gateways.xml import XmlGateway
from django_smsclub.models import Campaign, Message
from testproject.celery import app as celery_app
from tests.support.canned import CannedServer
from tests.support.settings import smsclub_settings

USERNAME = "380671112233"
#: A space, a plus, ampersand, angle brackets, a slash, a percent sign and Cyrillic: each of
#: URL-quoting, form encoding, XML escaping and JSON writes it another way.
PASSWORD = "Pw ж+1&<2>/%3"
WRONG_PASSWORD = "Wr0ng pw+&<ж>"
TOKEN = "T0ken+/ =&<x>"
WRONG_TOKEN = "Wr0ng t0k+&<x>"
SECRETS = (PASSWORD, WRONG_PASSWORD, TOKEN, WRONG_TOKEN)
A, B = "380501111111", "380672222222"

KINDS = {
    "http-post": (HttpGateway, "http", {"METHOD": "POST"}),
    "http-get": (HttpGateway, "http", {"METHOD": "GET"}),
    "xml": (XmlGateway, "xml", {}),
    "json": (JsonGateway, "json", {}),
    "soap": (SoapGateway, "soap", {}),
}
FAULTS = ("http_500", "drop_before", "drop_after", "garbled", "latency")
SCENARIOS = ("accepted", "wrong credentials", "refused sender", "unreachable", *FAULTS)


def written_forms(secret: str) -> set[str]:
    """Every way ``secret`` may be written out: as is, URL-quoted, form-encoded, XML-escaped,
    JSON-escaped, and as the hex of its bytes."""
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        xml_escape(secret),
        json.dumps(secret)[1:-1],
        secret.encode().hex(),
    }


def leaks(texts: Iterable[str]) -> list[tuple[str, str]]:
    """(secret form, text) for every text that holds a credential in any written form."""
    forms = set().union(*(written_forms(s) for s in SECRETS))
    return [(form, text[:300]) for text in texts for form in forms if form in text]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def emulator():
    with Emulator() as running:
        yield running


@pytest.fixture
def emu(emulator):
    """The emulator with one account whose password and token are :data:`PASSWORD` and
    :data:`TOKEN`, and no faults."""
    emulator.reset()
    emulator.json_rate_limit = None
    emulator.deliver_after(polls=0)
    emulator.add_account(USERNAME, PASSWORD, token=TOKEN, senders=("Shop",))
    yield emulator
    emulator.reset()


def gateway_options(emu: Emulator, backend: str, **extra: object) -> dict[str, object]:
    return {
        **emu.gateway_settings(backend),
        "USERNAME": USERNAME,
        "PASSWORD": PASSWORD,
        "TOKEN": TOKEN,
        "TIMEOUT": 0.4,
        "CONNECT_TIMEOUT": 0.4,
        **extra,
    }


# --- gateways: logs, errors, reprs, the emulator's log -----------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_no_credential_in_any_log_record_error_repr_or_emulator_log_whatever_fails(
    emu, caplog, kind, scenario
):
    caplog.set_level(logging.DEBUG)
    cls, backend, extra = KINDS[kind]
    if scenario == "wrong credentials":
        extra = {**extra, "PASSWORD": WRONG_PASSWORD, "TOKEN": WRONG_TOKEN}
    if scenario == "unreachable":
        extra = {**extra, "BASE_URL": f"http://127.0.0.1:{free_port()}"}
    if scenario in FAULTS:
        for op in ("send", "state", "balance"):
            emu.faults.add(scenario, op=op, seconds=1.0)
    gateway = cls(kind, **gateway_options(emu, backend, **extra))
    sender = "Stranger" if scenario == "refused sender" else "Shop"

    outcomes = gateway.send(sender, [Outgoing(A, "hi"), Outgoing(B, "Привіт")])
    errors: list[BaseException] = [o.error for o in outcomes if o.error]
    ids = [i for o in outcomes for i in o.smsc_ids] or ["1"]
    for query in (lambda: gateway.fetch_states(ids), gateway.balance):
        try:
            query()
        except GatewayError as exc:
            errors.append(exc)
    gateway.close()

    expected = {
        "accepted": type(None),
        "wrong credentials": AuthenticationError,
        "refused sender": ProviderRefused,
        "unreachable": GatewayUnavailable,
    }.get(scenario, AmbiguousSend)
    # After a request that may have gone out, the next one is not made: unavailable.
    assert isinstance(outcomes[0].error, expected), outcomes
    assert isinstance(outcomes[1].error, expected | GatewayUnavailable), outcomes
    assert bool(errors) == (scenario != "accepted")
    shown = [
        caplog.text,
        *(record.getMessage() for record in caplog.records),
        *(f"{exc} {exc!r} {getattr(exc, 'provider_text', '')}" for exc in errors),
        repr(outcomes),
        repr(gateway),
        repr(emu.requests),
    ]
    assert leaks(shown) == []
    if kind == "http-get" and scenario in ("accepted", "unreachable"):
        # The request lines and retries urllib3 logs at DEBUG quote the URL, redacted.
        assert "password=***" in caplog.text


def test_the_redaction_filter_covers_every_logger_that_quotes_a_url(emu, caplog):
    caplog.set_level(logging.DEBUG)
    gateway = HttpGateway(
        "get",
        **gateway_options(emu, "http", METHOD="GET", BASE_URL=f"http://127.0.0.1:{free_port()}"),
    )
    gateway.send("Shop", [Outgoing(A, "hi")])
    loggers = {record.name for record in caplog.records if "password=" in record.getMessage()}
    assert {"urllib3.connectionpool", "urllib3.util.retry"} <= loggers
    assert leaks(caplog.text.splitlines()) == []


# --- where credentials live: settings, never the database -------------------------------------


#: The one secret a model holds: the HMAC key of a webhook endpoint made in the admin, which
#: signs what we send (SECURITY.rst says so); no SMSClub credential is ever stored.
STORED_SECRETS = {("WebhookEndpoint", "secret")}


def test_no_model_has_a_field_for_a_credential():
    for model in apps.get_app_config("django_smsclub").get_models():
        for field in model._meta.get_fields():
            if (model.__name__, field.name) in STORED_SECRETS:
                continue
            assert not any(
                word in field.name.lower() for word in ("password", "token", "secret", "credential")
            ), f"{model.__name__}.{field.name}"


@pytest.fixture
def working_and_failing_gateways(settings, emu):
    """SMSCLUB with a gateway of each kind on the emulator, and three that fail: a wrong
    password, an unreachable host, a GET to an unreachable host (its URL holds the password)."""
    closed = f"http://127.0.0.1:{free_port()}"
    settings.SMSCLUB = smsclub_settings(
        {"unreachable-get": gateway_options(emu, "http", BASE_URL=closed, METHOD="GET")},
        default=gateway_options(emu, "xml"),
        http=gateway_options(emu, "http", METHOD="GET"),
        json=gateway_options(emu, "json"),
        soap=gateway_options(emu, "soap"),
        wrong=gateway_options(emu, "http", PASSWORD=WRONG_PASSWORD, METHOD="GET"),
        unreachable=gateway_options(emu, "xml", BASE_URL=closed),
        POLL_INTERVALS=[0],
        MAX_SEND_ATTEMPTS=1,
    )
    cache.clear()
    yield settings.SMSCLUB
    cache.clear()


def send_everywhere(smsclub: dict) -> list[Campaign]:
    """A campaign per gateway, started, sent and polled: messages sent, delivered and failed."""
    campaigns = []
    for name in smsclub["GATEWAYS"]:
        campaign = Campaign.objects.create(name=f"To {name}", text="Hello", gateway=name)
        campaign.add_recipients([A, B])
        campaign.start()
        services.send_due(name)
        services.poll_due(name)
        campaigns.append(campaign)
    services.refresh_campaigns()
    return campaigns


@pytest.mark.django_db
def test_sending_and_tracking_store_no_credential_and_log_none(
    working_and_failing_gateways, caplog
):
    caplog.set_level(logging.DEBUG)
    send_everywhere(working_and_failing_gateways)

    statuses = set(Message.objects.values_list("gateway", "status"))
    assert ("default", "delivered") in statuses and ("wrong", "failed") in statuses
    assert ("unreachable-get", "failed") in statuses
    assert Message.objects.exclude(error="").exists()
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert leaks([dump.getvalue(), caplog.text]) == []


def test_djangos_error_reports_hide_the_credentials_in_the_smsclub_setting(settings, emu):
    # The keys are named PASSWORD and TOKEN, which Django's filter cleanses at any depth.
    settings.SMSCLUB = smsclub_settings(default=gateway_options(emu, "json"))
    shown = SafeExceptionReporterFilter().get_safe_settings()["SMSCLUB"]
    assert shown["GATEWAYS"]["default"]["USERNAME"] == USERNAME
    assert leaks([repr(shown)]) == []


def test_campaigns_have_no_bulk_delete_action(rf, admin_user):
    request = rf.get("/")
    request.user = admin_user
    actions = admin_site._registry[Campaign].get_actions(request)
    assert "delete_selected" not in actions
    assert {"start_selected", "cancel_selected", "retry_selected", "poll_selected"} <= set(actions)


# --- Celery: gateway names in, counts out -----------------------------------------------------

TASKS = (tasks.send_queued, tasks.send_due, tasks.poll_reports, tasks.sweep)


def test_every_task_takes_at_most_a_gateway_name_and_keeps_no_result():
    for task in TASKS:
        assert list(inspect.signature(task.run).parameters) in ([], ["gateway"]), task.name
        assert task.ignore_result, task.name


@pytest.mark.django_db
def test_celery_messages_and_task_runs_carry_gateway_names_only(
    working_and_failing_gateways, django_capture_on_commit_callbacks
):
    published, runs = [], []

    def on_publish(body=None, headers=None, **kwargs):
        published.append(repr((body, headers)))

    def on_prerun(task=None, args=None, kwargs=None, **extra):
        runs.append(repr((task.name, args, kwargs)))

    def on_postrun(task=None, retval=None, **extra):
        runs.append(repr((task.name, retval)))

    before_task_publish.connect(on_publish, weak=False)
    task_prerun.connect(on_prerun, weak=False)
    task_postrun.connect(on_postrun, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            send_sms([A, B], "Hello", gateway="http")
        results = [
            tasks.send_queued.apply(args=("http",)).get(),
            tasks.send_queued.apply(args=("wrong",)).get(),
            tasks.send_due.apply().get(),
            tasks.poll_reports.apply().get(),
            tasks.sweep.apply().get(),
        ]
    finally:
        before_task_publish.disconnect(on_publish)
        task_prerun.disconnect(on_prerun)
        task_postrun.disconnect(on_postrun)
        # The in-memory broker keeps what was published; no later worker may run it.
        celery_app.control.purge()

    assert any("'http'" in message for message in published)
    assert results[0] == 2 and results[1] == 0
    assert leaks([*published, *runs, repr(results)]) == []


# --- the admin and the API --------------------------------------------------------------------


@pytest.mark.django_db
def test_no_admin_page_shows_a_credential(working_and_failing_gateways, admin_client):
    campaigns = send_everywhere(working_and_failing_gateways)
    pages = [
        reverse("admin:django_smsclub_campaign_changelist"),
        reverse("admin:django_smsclub_campaign_add"),
        reverse("admin:django_smsclub_message_changelist"),
        reverse("admin:django_smsclub_deliveryreport_changelist"),
        *(reverse("admin:django_smsclub_campaign_change", args=[c.pk]) for c in campaigns),
        *(
            reverse("admin:django_smsclub_message_change", args=[pk])
            for pk in Message.objects.values_list("pk", flat=True)
        ),
    ]
    shown = []
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        shown.append(response.content.decode())
    # The failing gateways' balances are on the pages, as "unavailable" with the reason.
    assert "unavailable" in shown[0]
    assert leaks(shown) == []


@pytest.mark.django_db
def test_no_api_answer_or_schema_shows_a_credential(working_and_failing_gateways):
    campaigns = send_everywhere(working_and_failing_gateways)
    root = get_user_model().objects.create_superuser("root", password="root-pw")
    client = APIClient()
    client.force_authenticate(root)
    api = "/api/sms/"
    paths = [
        api + "messages/",
        api + "campaigns/",
        "/api/schema/",
        *(f"{api}messages/{pk}/" for pk in Message.objects.values_list("pk", flat=True)),
        *(f"{api}campaigns/{c.pk}/" for c in campaigns),
        *(f"{api}campaigns/{c.pk}/stats/" for c in campaigns),
        *(f"{api}balance/?gateway={name}" for name in working_and_failing_gateways["GATEWAYS"]),
    ]
    shown, statuses = [], []
    for path in paths:
        response = client.get(path)
        statuses.append(response.status_code)
        shown.append(response.content.decode())
    # Every page answers; the balances of the three failing gateways are 503 with a reason.
    assert statuses.count(200) == len(paths) - 3 and statuses.count(503) == 3
    assert leaks(shown) == []


@pytest.mark.django_db
def test_an_api_post_in_a_browser_session_needs_a_csrf_token(settings):
    settings.SMSCLUB = smsclub_settings(default={"BACKEND": "locmem", "SENDER": "Shop"})
    client = Client(enforce_csrf_checks=True)
    client.force_login(get_user_model().objects.create_superuser("root", password="root-pw"))
    response = client.post(
        "/api/sms/messages/", {"to": A, "text": "hi"}, content_type="application/json"
    )
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    assert not Message.objects.exists()


# --- HTTP: method, redirects, plain HTTP ------------------------------------------------------


def urls_requested(gateway) -> list[str]:
    requested: list[str] = []
    gateway.session.hooks["response"].append(lambda r, **kwargs: requested.append(r.request.url))
    return requested


@pytest.mark.django_db
def test_the_http_gateway_posts_by_default_so_no_url_holds_the_password(settings, emu):
    settings.SMSCLUB = smsclub_settings(default=gateway_options(emu, "http"))
    gateway = get_gateway()
    requested = urls_requested(gateway)
    [outcome] = gateway.send("Shop", [Outgoing(A, "hi")])
    gateway.fetch_states(outcome.smsc_ids)
    assert gateway.balance().amount > 0

    assert gateway.method == "POST" and len(requested) == 3
    assert leaks(requested) == []


def test_a_get_puts_the_password_in_every_url_which_is_why_post_is_the_default(emu):
    gateway = HttpGateway("get", **gateway_options(emu, "http", METHOD="GET"))
    requested = urls_requested(gateway)
    gateway.send("Shop", [Outgoing(A, "hi")])
    assert requested and all(f"password={quote_plus(PASSWORD)}" in url for url in requested)


@pytest.fixture
def attacker():
    server = CannedServer()
    yield server
    server.close()


@pytest.fixture
def redirecting(attacker):
    """A server that answers every request with a 307 to the same path on ``attacker``."""

    class Redirect(BaseHTTPRequestHandler):
        def _answer(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(307)
            self.send_header("Location", attacker.url + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_redirect_is_never_followed_so_credentials_go_nowhere_else(
    emu, redirecting, attacker, kind
):
    cls, backend, extra = KINDS[kind]
    gateway = cls(kind, **gateway_options(emu, backend, BASE_URL=redirecting, **extra))
    [outcome] = gateway.send("Shop", [Outgoing(A, "hi")])
    with pytest.raises(GatewayUnavailable):
        gateway.fetch_states(["1"])
    with pytest.raises(GatewayUnavailable):
        gateway.balance()

    # The SOAP gateway cannot even read its WSDL; the others may have sent, and say so.
    assert isinstance(outcome.error, GatewayUnavailable if kind == "soap" else AmbiguousSend)
    assert attacker.bodies == []


def test_only_the_json_api_is_reached_over_https_by_default():
    # The provider documents plain-HTTP hosts for HTTP, XML and SOAP: see SECURITY.rst.
    assert JsonGateway.default_base_url == "https://im.smsclub.mobi"
    for cls in (HttpGateway, XmlGateway, SoapGateway):
        assert cls.default_base_url == "http://smpp.smsclub.mobi"
    assert DEFAULT_WSDL == "http://gate.smsclub.mobi/soap/soapGateway.wsdl"


# --- XML hardening ----------------------------------------------------------------------------


def test_an_external_entity_in_a_refusal_never_reaches_an_error_message(tmp_path, canned):
    secret = tmp_path / "secret.txt"
    secret.write_text("the content of a local file")
    doctype = f'<!DOCTYPE response [<!ENTITY x SYSTEM "file://{secret}">]>'
    gateway = XmlGateway("xxe", USERNAME=USERNAME, PASSWORD=PASSWORD, BASE_URL=canned.url)
    canned.reply = (
        f"<?xml version='1.0'?>{doctype}<response><status>ERROR</status><text>&x;</text>"
        "</response>".encode(),
        "text/xml",
        200,
    )
    [outcome] = gateway.send("Shop", [Outgoing(A, "hi")])
    with pytest.raises(GatewayUnavailable) as caught:
        gateway.fetch_states(["1"])

    assert isinstance(outcome.error, AmbiguousSend)
    assert "DOCTYPE is not allowed" in str(outcome.error)
    assert "local file" not in f"{outcome.error} {caught.value}"


def test_a_wsdl_past_max_reply_bytes_is_not_read(canned):
    canned.reply = (b"<definitions>" + b" " * MAX_REPLY_BYTES + b"</definitions>", "text/xml", 200)
    gateway = SoapGateway("big-wsdl", USERNAME=USERNAME, PASSWORD=PASSWORD, BASE_URL=canned.url)
    with pytest.raises(GatewayUnavailable, match="larger than"):
        gateway.service_description()


@pytest.mark.parametrize(
    "value",
    [
        "<return>" + "<item>" * 12 + "1" + "</item>" * 12 + "</return>",
        '<return href="http://127.0.0.1:1/elsewhere"/>',
        '<return href="#nowhere"/>',
    ],
)
def test_soap_values_nested_too_deep_or_referring_outside_the_document_are_refused(value):
    with pytest.raises(ValueError, match="too deep|unresolved"):
        soap_decode(etree.fromstring(value), {})


def test_zeep_reads_the_wsdl_without_dtds_entities_or_huge_trees():
    assert ZEEP_SETTINGS.forbid_dtd and ZEEP_SETTINGS.forbid_entities
    assert not ZEEP_SETTINGS.xml_huge_tree and ZEEP_SETTINGS.strict


def test_the_emulator_refuses_huge_or_chunked_bodies_unread(emulator):
    path = emulator.url + "/hfw_smpp_addon/httpsendsmspost.php"
    huge = requests.post(path, data=b"x" * (4 * 1024 * 1024 + 1), timeout=10)
    chunked = requests.post(path, data=iter([b"username=x"]), timeout=10)
    assert (huge.status_code, chunked.status_code) == (413, 411)
    assert emulator.accepted == []


def test_the_emulator_listens_on_loopback_only(emulator):
    assert HOST == "127.0.0.1"
    assert emulator.url == f"http://127.0.0.1:{emulator.port}"


# --- the test project's error pages (issue 12) -------------------------------------------------


@pytest.mark.parametrize(
    ("given", "debug"), [(None, False), ("", False), ("0", False), ("1", True)]
)
def test_the_test_project_runs_without_debug_unless_asked_for(given, debug):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_DEBUG"}
    if given is not None:
        env["DJANGO_DEBUG"] = given
    done = subprocess.run(
        [sys.executable, "-c", "import testproject.settings as s; print(s.DEBUG)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == str(debug)


def test_the_debug_page_never_shows_smsclub_json_or_any_password_or_token(rf, settings):
    secrets = [f"SECRET-{i}-value" for i in range(6)]
    smsclub_json = json.dumps(
        {"GATEWAYS": {"default": {"BACKEND": "xml", "PASSWORD": secrets[0], "SENDER": "Shop"}}}
    )
    request = rf.get(
        "/boom/",
        SMSCLUB_JSON=smsclub_json,
        SMSCLUB_PASSWORD=secrets[1],
        DATABASE_URL=f"postgres://shop:{secrets[2]}@db/shop",
    )
    settings.DEBUG = True
    settings.SMSCLUB = smsclub_settings(
        default={
            "BACKEND": "json",
            "TOKEN": secrets[3],
            "OPTIONS": {"auth": [{"password": secrets[4]}]},
        },
        backup={"BACKEND": "xml", "USERNAME": "380501234567", "PASSWORD": secrets[5]},
    )
    page = _error_page(request)

    assert "boom" in page and "SMSCLUB_JSON" in page and "380501234567" in page
    for secret in secrets:
        assert secret not in page, secret


def _error_page(request):
    """The DEBUG page of an error in a view, whose frames hold no secret of the test's own."""
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        return technical_500_response(request, *sys.exc_info()).content.decode()
