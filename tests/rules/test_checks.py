"""System checks on the ``SMSCLUB`` setting."""

from __future__ import annotations

import sys
import types

import pytest
from django.core.checks import Error, Warning, run_checks

from django_smsclub import checks
from django_smsclub.gateways.locmem import LocmemGateway

PASSWORD = "pa55-NEVER-SHOWN"
TOKEN = "tok-NEVER-SHOWN"

XML = {"BACKEND": "xml", "USERNAME": "380501234567", "PASSWORD": PASSWORD, "SENDER": "Shop"}
HTTP = {**XML, "BACKEND": "http"}
JSON = {"BACKEND": "json", "TOKEN": TOKEN, "SENDER": "Shop"}
LOCMEM = {"BACKEND": "locmem", "SENDER": "Shop"}


class CustomLocmem(LocmemGateway):
    """A project's own gateway class."""


class NotAGateway:
    pass


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def run(settings, smsclub):
    settings.SMSCLUB = smsclub
    return checks.check_settings()


def only(messages, check_id):
    found = [m for m in messages if m.id == check_id]
    assert found, f"no {check_id} in {messages}"
    return found


# --- a good configuration ---------------------------------------------------------------------


def test_valid_configuration_gives_no_message(settings):
    smsclub = {
        "DEFAULT_GATEWAY": "default",
        "GATEWAYS": {"default": XML, "http": HTTP, "json": JSON, "mem": LOCMEM},
    }
    assert run(settings, smsclub) == []


def test_valid_configuration_with_dotted_paths_and_options(settings):
    smsclub = {
        "GATEWAYS": {
            "default": {
                **XML,
                "BACKEND": "django_smsclub.gateways.xml.XmlGateway",
                "BATCH_SIZE": 50,
                "TIMEOUT": 10,
                "CONNECT_TIMEOUT": 2.5,
            },
            "custom": {"BACKEND": "tests.rules.test_checks.CustomLocmem", "SENDER": "Shop 2"},
        },
        "TRACKING_WINDOW": 3600,
        "POLL_INTERVALS": [10, 20],
        "DEFAULT_REGION": "PL",
    }
    assert run(settings, smsclub) == []


def test_checks_are_registered_under_their_tag(settings):
    settings.SMSCLUB = {"GATEWAYS": {}}
    assert "django_smsclub.E001" in ids(run_checks(tags=["django_smsclub"]))
    settings.SMSCLUB = {"GATEWAYS": {"default": XML}}
    assert run_checks(tags=["django_smsclub"]) == []


def test_checks_run_with_the_rest(settings):
    settings.SMSCLUB = {"GATEWAYS": {}}
    assert "django_smsclub.E001" in ids(run_checks())


# --- E001: nothing to send through ------------------------------------------------------------


def test_no_setting_at_all(settings):
    del settings.SMSCLUB
    messages = checks.check_settings()
    assert ids(messages) == ["django_smsclub.E001"]
    assert isinstance(messages[0], Error)
    assert messages[0].hint


@pytest.mark.parametrize("smsclub", [{}, {"GATEWAYS": {}}, None])
def test_no_gateways(settings, smsclub):
    messages = run(settings, smsclub)
    assert ids(messages) == ["django_smsclub.E001"]
    assert "configures no gateway" in messages[0].msg


@pytest.mark.parametrize("smsclub", [[], "xml", {"GATEWAYS": ["default"]}, {"GATEWAYS": "xml"}])
def test_wrong_shapes(settings, smsclub):
    messages = run(settings, smsclub)
    assert ids(messages) == ["django_smsclub.E001"]
    assert "must be a dict" in messages[0].msg


# --- E002: unknown default --------------------------------------------------------------------


def test_unknown_default_gateway(settings):
    messages = run(settings, {"DEFAULT_GATEWAY": "main", "GATEWAYS": {"default": XML}})
    assert ids(messages) == ["django_smsclub.E002"]
    assert "'main'" in messages[0].msg
    assert "'default'" in messages[0].msg


def test_default_gateway_of_the_wrong_type_does_not_crash(settings):
    messages = run(settings, {"DEFAULT_GATEWAY": ["default"], "GATEWAYS": {"default": XML}})
    assert ids(messages) == ["django_smsclub.E002"]


# --- E003: backend ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend",
    ["nope", "no.such.module.Gateway", "django_smsclub.gateways.xml.NoSuchGateway", "XML"],
)
def test_unimportable_backend(settings, backend):
    messages = run(settings, {"GATEWAYS": {"default": {**XML, "BACKEND": backend}}})
    assert ids(messages) == ["django_smsclub.E003"]
    assert repr(backend) in messages[0].msg
    assert "'default'" in messages[0].msg
    assert "xml" in messages[0].hint


def test_backend_that_is_not_a_gateway(settings):
    messages = run(
        settings,
        {
            "GATEWAYS": {
                "a": {**XML, "BACKEND": "tests.rules.test_checks.NotAGateway"},
                "b": {**XML, "BACKEND": "django_smsclub.checks.check_settings"},
            }
        },
    )
    assert ids(messages) == ["django_smsclub.E002", "django_smsclub.E003", "django_smsclub.E003"]
    assert "NotAGateway" in messages[1].msg
    assert "not a django_smsclub Gateway" in messages[1].msg


def test_backend_that_is_not_a_string_does_not_crash(settings):
    messages = run(settings, {"GATEWAYS": {"default": {**XML, "BACKEND": LocmemGateway}}})
    assert ids(messages) == ["django_smsclub.E003"]


def test_backend_module_that_fails_to_load_does_not_crash(settings, monkeypatch):
    def broken(path):
        raise RuntimeError("the module blew up")

    monkeypatch.setattr(checks, "import_string", broken)
    messages = run(settings, {"GATEWAYS": {"default": XML}})
    assert ids(messages) == ["django_smsclub.E003"]
    assert "RuntimeError" in messages[0].msg
    assert "blew up" in messages[0].msg


@pytest.mark.parametrize("gateway", [{}, {"BACKEND": ""}, "xml", None])
def test_gateway_without_backend_or_not_a_dict(settings, gateway):
    messages = run(settings, {"GATEWAYS": {"default": gateway}})
    assert ids(messages) == ["django_smsclub.E003"]
    assert "'default'" in messages[0].msg


def test_each_gateway_is_checked(settings):
    smsclub = {
        "GATEWAYS": {
            "default": XML,
            "bad": {**XML, "BACKEND": "no.such.Gateway"},
            "worse": {**XML, "BACKEND": "also.missing.Gateway"},
        }
    }
    messages = run(settings, smsclub)
    assert ids(messages) == ["django_smsclub.E003", "django_smsclub.E003"]
    assert "'bad'" in messages[0].msg
    assert "'worse'" in messages[1].msg


# --- E004: credentials ------------------------------------------------------------------------


@pytest.mark.parametrize("base", [XML, HTTP], ids=["xml", "http"])
@pytest.mark.parametrize(
    ("drop", "named"),
    [
        (["USERNAME"], "USERNAME"),
        (["PASSWORD"], "PASSWORD"),
        (["USERNAME", "PASSWORD"], "USERNAME"),
    ],
)
def test_missing_username_or_password(settings, base, drop, named):
    gateway = {k: v for k, v in base.items() if k not in drop}
    messages = run(settings, {"GATEWAYS": {"default": gateway}})
    assert ids(messages) == ["django_smsclub.E004"]
    for key in drop:
        assert key in messages[0].msg
    assert named in messages[0].msg
    assert "'default'" in messages[0].msg


@pytest.mark.parametrize("value", ["", None])
def test_empty_password_counts_as_missing(settings, value):
    messages = run(settings, {"GATEWAYS": {"default": {**XML, "PASSWORD": value}}})
    assert ids(messages) == ["django_smsclub.E004"]


def test_password_gateway_does_not_need_a_token(settings):
    assert run(settings, {"GATEWAYS": {"default": {**XML, "TOKEN": ""}}}) == []


@pytest.mark.parametrize("token", [None, ""])
def test_missing_token_for_json(settings, token):
    gateway = {**JSON, "TOKEN": token, "USERNAME": "u", "PASSWORD": PASSWORD}
    messages = run(settings, {"GATEWAYS": {"default": gateway}})
    assert ids(messages) == ["django_smsclub.E004"]
    assert "TOKEN" in messages[0].msg
    assert "JsonGateway" in messages[0].msg


def test_json_does_not_need_a_password(settings):
    assert run(settings, {"GATEWAYS": {"default": JSON}}) == []


def test_locmem_needs_no_credentials(settings):
    assert run(settings, {"GATEWAYS": {"default": LOCMEM}}) == []


def test_a_subclass_of_a_password_gateway_needs_a_password(settings, monkeypatch):
    from django_smsclub.gateways.xml import XmlGateway

    class MyXml(XmlGateway):
        pass

    module = types.ModuleType("smsclub_test_custom_gateways")
    module.MyXml = MyXml
    monkeypatch.setitem(sys.modules, module.__name__, module)
    gateway = {"BACKEND": "smsclub_test_custom_gateways.MyXml", "SENDER": "Shop"}
    messages = run(settings, {"GATEWAYS": {"default": gateway}})
    assert ids(messages) == ["django_smsclub.E004"]
    assert "MyXml" in messages[0].msg


# --- E005 / W001: sender ----------------------------------------------------------------------


@pytest.mark.parametrize("sender", ["Магазин", "ABCDEFGHIJKL", "Shop!", "   ", 42])
def test_invalid_sender(settings, sender):
    messages = run(settings, {"GATEWAYS": {"default": {**XML, "SENDER": sender}}})
    assert ids(messages) == ["django_smsclub.E005"]
    assert repr(sender) in messages[0].msg
    assert "SENDER" in messages[0].msg


def test_long_sender_error_says_the_limit(settings):
    messages = run(settings, {"GATEWAYS": {"default": {**XML, "SENDER": "ABCDEFGHIJKL"}}})
    assert "11" in messages[0].msg
    assert "12" in messages[0].msg


@pytest.mark.parametrize("sender", [None, ""])
def test_missing_sender_is_a_warning(settings, sender):
    gateway = {k: v for k, v in XML.items() if k != "SENDER"}
    if sender is not None:
        gateway["SENDER"] = sender
    messages = run(settings, {"GATEWAYS": {"default": gateway}})
    assert ids(messages) == ["django_smsclub.W001"]
    assert isinstance(messages[0], Warning)
    assert not isinstance(messages[0], Error)
    assert "'default'" in messages[0].msg


def test_problems_of_one_gateway_add_up(settings):
    gateway = {"BACKEND": "xml", "SENDER": "Магазин"}
    messages = run(settings, {"DEFAULT_GATEWAY": "x", "GATEWAYS": {"default": gateway}})
    assert ids(messages) == ["django_smsclub.E002", "django_smsclub.E004", "django_smsclub.E005"]


# --- E006: values the tasks read --------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("TRACKING_WINDOW", "three days"),
        ("TRACKING_WINDOW", -1),
        ("STALE_SENDING_AFTER", None),
        ("POLL_INTERVALS", []),
        ("POLL_INTERVALS", [30, -5]),
        ("DEFAULT_REGION", "ZZ"),
        ("DEFAULT_REGION", "Ukraine"),
        ("DEFAULT_REGION", None),
    ],
)
def test_bad_top_level_values(settings, key, value):
    messages = run(settings, {"GATEWAYS": {"default": XML}, key: value})
    assert ids(messages) == ["django_smsclub.E006"]
    assert key in messages[0].msg
    assert repr(value) in messages[0].msg


def test_lower_case_region_is_fine(settings):
    assert run(settings, {"GATEWAYS": {"default": XML}, "DEFAULT_REGION": "pl"}) == []


# --- E007: gateway numbers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("BATCH_SIZE", -1),
        ("BATCH_SIZE", 10**6),
        ("BATCH_SIZE", "many"),
        ("BATCH_SIZE", True),
        ("TIMEOUT", -5),
        ("TIMEOUT", "slow"),
        ("TIMEOUT", float("inf")),
        ("CONNECT_TIMEOUT", float("nan")),
        ("CONNECT_TIMEOUT", [1]),
    ],
)
def test_bad_gateway_numbers(settings, key, value):
    messages = run(settings, {"GATEWAYS": {"default": {**XML, key: value}}})
    assert ids(messages) == ["django_smsclub.E007"]
    assert key in messages[0].msg
    assert repr(value) in messages[0].msg


@pytest.mark.parametrize(
    ("key", "value"),
    [("BATCH_SIZE", None), ("BATCH_SIZE", 1), ("BATCH_SIZE", "20"), ("TIMEOUT", "7.5")],
)
def test_gateway_numbers_the_gateway_accepts(settings, key, value):
    assert run(settings, {"GATEWAYS": {"default": {**XML, key: value}}}) == []


def test_batch_size_limit_is_the_gateways_own(settings):
    from django_smsclub.gateways.xml import XmlGateway

    top = XmlGateway.max_batch
    assert run(settings, {"GATEWAYS": {"default": {**XML, "BATCH_SIZE": top}}}) == []
    messages = run(settings, {"GATEWAYS": {"default": {**XML, "BATCH_SIZE": top + 1}}})
    assert ids(messages) == ["django_smsclub.E007"]
    assert str(top) in messages[0].msg


# --- secrets ----------------------------------------------------------------------------------


BROKEN_CONFIGURATIONS = [
    {"DEFAULT_GATEWAY": "nope", "GATEWAYS": {"default": XML}},
    {"GATEWAYS": {"default": {**XML, "BACKEND": "no.such.Gateway"}}},
    {"GATEWAYS": {"default": {**XML, "BACKEND": ""}}},
    {"GATEWAYS": {"default": {**XML, "USERNAME": ""}}},
    {"GATEWAYS": {"default": {**JSON, "TOKEN": "", "PASSWORD": PASSWORD}}},
    {"GATEWAYS": {"default": {**XML, "SENDER": "Магазин"}}},
    {"GATEWAYS": {"default": {**XML, "SENDER": ""}}},
    {"GATEWAYS": {"default": {**XML, "BATCH_SIZE": 0.5, "TIMEOUT": "x"}}},
    {"GATEWAYS": {"default": {**XML, "BACKEND": "tests.rules.test_checks.NotAGateway"}}},
    {"GATEWAYS": {"default": {**JSON, "BACKEND": "no.such.Gateway"}}},
    {"GATEWAYS": {"default": XML, "other": {**JSON, "SENDER": "x" * 20}}, "TRACKING_WINDOW": "x"},
]


@pytest.mark.parametrize("smsclub", BROKEN_CONFIGURATIONS)
def test_no_message_contains_a_password_or_token(settings, smsclub):
    messages = run(settings, smsclub)
    assert messages
    for message in messages:
        shown = f"{message.msg} {message.hint or ''} {message!s} {message!r}"
        assert PASSWORD not in shown
        assert TOKEN not in shown
