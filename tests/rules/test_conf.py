"""Settings: the ``SMSCLUB`` dict read at call time, with defaults, aliases and validation.

Also the exception hierarchy that ``conf`` and every other module raise.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings

from django_smsclub import conf, exceptions
from django_smsclub.exceptions import ConfigurationError

PASSWORD = "pa55-DO-NOT-SHOW"

XML = {"BACKEND": "xml", "USERNAME": "380501234567", "PASSWORD": PASSWORD, "SENDER": "Shop"}


@pytest.fixture
def no_smsclub(settings):
    del settings.SMSCLUB
    return settings


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_without_the_setting(no_smsclub):
    assert conf.smsclub_settings() == conf.DEFAULTS
    assert conf.gateway_names() == []
    assert conf.default_gateway_name() == "default"
    assert conf.default_region() == "UA"
    assert conf.tracking_window() == timedelta(days=3)
    assert conf.stale_sending_after() == timedelta(minutes=15)
    assert conf.poll_intervals() == [30, 60, 120, 300, 600, 1800, 3600]
    assert conf.get("MAX_SEND_ATTEMPTS") == 5
    assert conf.get("RESEND_AMBIGUOUS") is False


@pytest.mark.parametrize("value", [None, {}])
def test_none_or_empty_setting_means_defaults(settings, value):
    settings.SMSCLUB = value
    assert conf.smsclub_settings() == conf.DEFAULTS


def test_configured_values_override_defaults_and_the_rest_stay(settings):
    settings.SMSCLUB = {"DEFAULT_REGION": "PL", "MAX_SEND_ATTEMPTS": 2}
    assert conf.default_region() == "PL"
    assert conf.get("MAX_SEND_ATTEMPTS") == 2
    assert conf.get("SEND_BATCH_SIZE") == conf.DEFAULTS["SEND_BATCH_SIZE"]
    assert conf.tracking_window() == timedelta(days=3)


def test_unknown_key_raises_key_error(settings):
    settings.SMSCLUB = {}
    with pytest.raises(KeyError):
        conf.get("NO_SUCH_KEY")


def test_changing_what_conf_returns_does_not_change_the_defaults(no_smsclub):
    conf.get("POLL_INTERVALS").append(1)
    conf.get("GATEWAYS")["x"] = {}
    assert conf.get("POLL_INTERVALS") == [30, 60, 120, 300, 600, 1800, 3600]
    assert conf.gateway_names() == []


def test_changing_gateway_options_does_not_change_the_defaults(settings):
    settings.SMSCLUB = {"GATEWAYS": {"a": {"BACKEND": "locmem"}, "b": {"BACKEND": "locmem"}}}
    conf.gateway_settings("a")["OPTIONS"]["STATE"] = "UNDELIV"
    assert conf.gateway_settings("b")["OPTIONS"] == {}
    assert conf.GATEWAY_DEFAULTS["OPTIONS"] == {}


# --- read at call time ------------------------------------------------------------------------


def test_settings_are_read_at_call_time():
    with override_settings(SMSCLUB={"DEFAULT_GATEWAY": "one", "GATEWAYS": {"one": XML}}):
        assert conf.default_gateway_name() == "one"
        assert conf.gateway_names() == ["one"]
        assert conf.gateway_settings()["NAME"] == "one"
    with override_settings(SMSCLUB={"DEFAULT_GATEWAY": "two", "GATEWAYS": {"two": XML}}):
        assert conf.default_gateway_name() == "two"
        assert conf.gateway_names() == ["two"]
        assert conf.gateway_settings()["NAME"] == "two"
    with override_settings(SMSCLUB={"TRACKING_WINDOW": 60, "DEFAULT_REGION": "PL"}):
        assert conf.tracking_window() == timedelta(minutes=1)
        assert conf.default_region() == "PL"


def test_settings_fixture_changes_take_effect(settings):
    settings.SMSCLUB = {"STALE_SENDING_AFTER": 5}
    assert conf.stale_sending_after() == timedelta(seconds=5)
    settings.SMSCLUB = {"STALE_SENDING_AFTER": 7}
    assert conf.stale_sending_after() == timedelta(seconds=7)


# --- gateways ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("alias", "path"), sorted(conf.BACKEND_ALIASES.items()))
def test_backend_aliases(settings, alias, path):
    settings.SMSCLUB = {"GATEWAYS": {"default": {"BACKEND": alias}}}
    assert conf.gateway_settings("default")["BACKEND"] == path


def test_alias_paths():
    assert conf.BACKEND_ALIASES["xml"] == "django_smsclub.gateways.xml.XmlGateway"
    assert conf.BACKEND_ALIASES["http"] == "django_smsclub.gateways.http.HttpGateway"
    assert conf.BACKEND_ALIASES["json"] == "django_smsclub.gateways.json.JsonGateway"
    assert conf.BACKEND_ALIASES["locmem"] == "django_smsclub.gateways.locmem.LocmemGateway"


def test_dotted_backend_is_kept(settings):
    settings.SMSCLUB = {"GATEWAYS": {"default": {"BACKEND": "my.module.MyGateway"}}}
    assert conf.gateway_settings()["BACKEND"] == "my.module.MyGateway"


def test_gateway_settings_fill_defaults_and_name(settings):
    settings.SMSCLUB = {
        "DEFAULT_GATEWAY": "main",
        "GATEWAYS": {"main": XML, "other": {"BACKEND": "json", "TOKEN": "t", "TIMEOUT": 3}},
    }
    main = conf.gateway_settings()
    assert main == {
        **conf.GATEWAY_DEFAULTS,
        **XML,
        "BACKEND": "django_smsclub.gateways.xml.XmlGateway",
        "NAME": "main",
    }
    other = conf.gateway_settings("other")
    assert other["NAME"] == "other"
    assert other["TIMEOUT"] == 3
    assert other["TOKEN"] == "t"
    assert other["USERNAME"] == ""
    assert other["METHOD"] == "POST"
    assert conf.gateway_names() == ["main", "other"]


def test_gateway_named_name_cannot_be_renamed_by_its_settings(settings):
    settings.SMSCLUB = {"GATEWAYS": {"real": {"BACKEND": "xml", "NAME": "fake"}}}
    assert conf.gateway_settings("real")["NAME"] == "real"


def test_unknown_gateway_names_it_and_the_configured_ones(settings):
    settings.SMSCLUB = {"GATEWAYS": {"main": XML, "backup": XML}}
    with pytest.raises(ConfigurationError) as excinfo:
        conf.gateway_settings("nope")
    message = str(excinfo.value)
    assert "'nope'" in message
    assert "'main'" in message
    assert "'backup'" in message
    assert PASSWORD not in message


def test_unknown_default_gateway_names_it(settings):
    settings.SMSCLUB = {"DEFAULT_GATEWAY": "missing", "GATEWAYS": {"main": XML}}
    with pytest.raises(ConfigurationError) as excinfo:
        conf.gateway_settings()
    assert "'missing'" in str(excinfo.value)
    assert "'main'" in str(excinfo.value)


def test_unknown_gateway_when_none_is_configured(no_smsclub):
    with pytest.raises(ConfigurationError, match=r"'default'.*none"):
        conf.gateway_settings()


@pytest.mark.parametrize("raw", ["xml", None, ["xml"]])
def test_gateway_settings_must_be_a_dict(settings, raw):
    settings.SMSCLUB = {"GATEWAYS": {"main": raw}}
    with pytest.raises(ConfigurationError, match=r"\['main'\] must be a dict"):
        conf.gateway_settings("main")


@pytest.mark.parametrize("gateway", [{}, {"BACKEND": ""}, {"BACKEND": None, "PASSWORD": PASSWORD}])
def test_gateway_without_backend(settings, gateway):
    settings.SMSCLUB = {"GATEWAYS": {"main": gateway}}
    with pytest.raises(ConfigurationError) as excinfo:
        conf.gateway_settings("main")
    assert "'main'" in str(excinfo.value)
    assert "BACKEND" in str(excinfo.value)
    assert PASSWORD not in str(excinfo.value)


# --- bad shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [[], ["xml"], "xml", "", 0, 1, ("a",)])
def test_smsclub_must_be_a_dict(settings, value):
    settings.SMSCLUB = value
    with pytest.raises(ConfigurationError) as excinfo:
        conf.smsclub_settings()
    assert "SMSCLUB must be a dict" in str(excinfo.value)
    assert type(value).__name__ in str(excinfo.value)
    with pytest.raises(ConfigurationError):
        conf.gateway_names()


@pytest.mark.parametrize("value", [["main"], "main", None])
def test_gateways_must_be_a_dict(settings, value):
    settings.SMSCLUB = {"GATEWAYS": value}
    with pytest.raises(ConfigurationError, match=r"SMSCLUB\['GATEWAYS'\] must be a dict"):
        conf.gateway_names()
    with pytest.raises(ConfigurationError):
        conf.gateway_settings("main")


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (60, timedelta(minutes=1)),
        (2.5, timedelta(seconds=2.5)),
        ("90", timedelta(seconds=90)),
        (0, timedelta(0)),
        (timedelta(hours=2), timedelta(hours=2)),
    ],
)
@pytest.mark.parametrize(
    ("key", "read"),
    [("TRACKING_WINDOW", conf.tracking_window), ("STALE_SENDING_AFTER", conf.stale_sending_after)],
)
def test_good_seconds(settings, key, read, value, expected):
    settings.SMSCLUB = {key: value}
    assert read() == expected


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "",
        None,
        [60],
        {"seconds": 60},
        -1,
        -0.5,
        "-5",
        timedelta(seconds=-1),
        float("inf"),
        float("-inf"),
        float("nan"),
        "inf",
        1e20,
        10**30,
        True,
        False,
    ],
)
@pytest.mark.parametrize(
    ("key", "read"),
    [("TRACKING_WINDOW", conf.tracking_window), ("STALE_SENDING_AFTER", conf.stale_sending_after)],
)
def test_bad_seconds(settings, key, read, value):
    settings.SMSCLUB = {key: value}
    with pytest.raises(ConfigurationError) as excinfo:
        read()
    assert repr(key) in str(excinfo.value)
    assert repr(value) in str(excinfo.value)


def test_poll_intervals(settings):
    settings.SMSCLUB = {"POLL_INTERVALS": [5, "10", 20.9, timedelta(minutes=1)]}
    assert conf.poll_intervals() == [5, 10, 20, 60]
    settings.SMSCLUB = {"POLL_INTERVALS": (0,)}
    assert conf.poll_intervals() == [0]


@pytest.mark.parametrize(
    "value",
    [[], (), "30", 30, None, [30, -1], [30, "x"], [30, None], [True], [float("inf")], {30: 1}],
)
def test_bad_poll_intervals(settings, value):
    settings.SMSCLUB = {"POLL_INTERVALS": value}
    with pytest.raises(ConfigurationError) as excinfo:
        conf.poll_intervals()
    assert "POLL_INTERVALS" in str(excinfo.value)
    assert repr(value) in str(excinfo.value)


# --- exceptions -------------------------------------------------------------------------------


def test_exception_hierarchy():
    e = exceptions
    assert issubclass(e.ConfigurationError, e.SmsClubError)
    assert issubclass(e.InvalidMessage, e.SmsClubError)
    assert issubclass(e.InvalidMessage, ValueError)
    assert issubclass(e.GatewayError, e.SmsClubError)
    for cls in (e.AuthenticationError, e.ProviderRefused, e.GatewayUnavailable, e.AmbiguousSend):
        assert issubclass(cls, e.GatewayError)
    assert issubclass(e.RateLimited, e.GatewayError)
    assert issubclass(e.SmsClubError, Exception)
    assert not issubclass(e.GatewayError, ValueError)
    assert not issubclass(e.ConfigurationError, ValueError)


@pytest.mark.parametrize(
    ("cls", "may_have_sent", "retryable"),
    [
        (exceptions.GatewayError, False, False),
        (exceptions.AuthenticationError, False, False),
        (exceptions.ProviderRefused, False, False),
        (exceptions.GatewayUnavailable, False, True),
        (exceptions.AmbiguousSend, True, False),
        (exceptions.RateLimited, False, True),
    ],
)
def test_gateway_error_flags(cls, may_have_sent, retryable):
    error = cls("boom", gateway="main")
    assert error.may_have_sent is may_have_sent
    assert error.retryable is retryable
    assert cls.may_have_sent is may_have_sent
    assert cls.retryable is retryable
    assert error.gateway == "main"
    assert str(error) == "boom"


def test_gateway_error_without_gateway_name():
    assert exceptions.GatewayError("x").gateway == ""


def test_provider_refused_keeps_the_provider_text():
    error = exceptions.ProviderRefused("refused", gateway="g", provider_text="Недостаточно средств")
    assert error.provider_text == "Недостаточно средств"
    assert error.gateway == "g"
    assert exceptions.ProviderRefused("refused").provider_text == ""


def test_rate_limited_retry_after():
    assert exceptions.RateLimited("slow down", retry_after=1.5).retry_after == 1.5
    assert exceptions.RateLimited("slow down").retry_after is None


def test_invalid_message_problems():
    one = exceptions.InvalidMessage("bad number '1'")
    assert one.problems == ["bad number '1'"]
    assert str(one) == "bad number '1'"
    many = exceptions.InvalidMessage(["a is bad", "b is bad"])
    assert many.problems == ["a is bad", "b is bad"]
    assert str(many) == "a is bad; b is bad"
    generated = exceptions.InvalidMessage(p for p in ("x", "y"))
    assert generated.problems == ["x", "y"]
    with pytest.raises(ValueError, match="a is bad"):
        raise many
