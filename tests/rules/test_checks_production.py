"""System checks for what fails only in production: typos in settings keys, connection settings,
a rate limit kept per process, the password in GET URLs (``--deploy``), SQLite without the
options its writers need."""

from __future__ import annotations

import pytest
from django.core.checks import Error, Warning, run_checks

from django_smsclub import checks, conf

PASSWORD = "pa55-NEVER-SHOWN"
XML = {"BACKEND": "xml", "USERNAME": "380501234567", "PASSWORD": PASSWORD, "SENDER": "Shop"}
HTTP = {**XML, "BACKEND": "http"}
JSON = {"BACKEND": "json", "TOKEN": "tok-NEVER-SHOWN", "SENDER": "Shop"}
SMPP = {**XML, "BACKEND": "smpp", "HOST": "127.0.0.1", "PORT": 2775, "WINDOW": 5}
SOAP = {**XML, "BACKEND": "soap", "WSDL": "http://x/soap.wsdl", "BALANCE_URL": "http://x"}
LOCMEM_CACHE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
DUMMY_CACHE = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
SHARED_CACHE = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache"}}


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def run(settings, gateways, **top):
    settings.SMSCLUB = {"GATEWAYS": gateways, **top}
    return checks.check_settings()


# --- W002: unknown keys -----------------------------------------------------------------------


def test_a_misspelt_gateway_key_is_named_with_the_closest_known_one(settings):
    messages = run(settings, {"default": {**XML, "TIMOUT": 5}})
    assert ids(messages) == ["django_smsclub.W002"]
    assert isinstance(messages[0], Warning)
    assert "SMSCLUB['GATEWAYS']['default']" in messages[0].msg
    assert "'TIMOUT'" in messages[0].msg
    assert messages[0].hint == "Did you mean 'TIMEOUT'?"


def test_a_misspelt_top_level_key_is_named_with_the_closest_known_one(settings):
    messages = run(settings, {"default": XML}, TRACKING_WINDOWS=60)
    assert ids(messages) == ["django_smsclub.W002"]
    assert messages[0].msg.startswith("SMSCLUB has the unknown key 'TRACKING_WINDOWS'")
    assert messages[0].hint == "Did you mean 'TRACKING_WINDOW'?"


def test_a_key_like_no_other_lists_the_known_ones(settings):
    messages = run(settings, {"default": {**XML, "COLOUR": "blue"}})
    assert ids(messages) == ["django_smsclub.W002"]
    assert messages[0].hint.startswith("Known keys: ")
    assert "BASE_URL" in messages[0].hint


def test_unknown_key_message_never_shows_its_value(settings):
    messages = run(settings, {"default": {**XML, "PASSWROD": PASSWORD}})
    assert ids(messages) == ["django_smsclub.W002"]
    assert messages[0].hint == "Did you mean 'PASSWORD'?"
    assert PASSWORD not in messages[0].msg + messages[0].hint


def test_every_default_key_is_known(settings):
    """Keys other modules add to conf's defaults are known without touching the checks."""
    top = {key: value for key, value in conf.DEFAULTS.items() if key != "GATEWAYS"}
    gateway = {**conf.GATEWAY_DEFAULTS, **XML}
    assert "django_smsclub.W002" not in ids(run(settings, {"default": gateway}, **top))


def test_a_key_added_to_the_defaults_becomes_known(settings, monkeypatch):
    monkeypatch.setitem(conf.GATEWAY_DEFAULTS, "NEW_KEY", None)
    monkeypatch.setitem(conf.DEFAULTS, "NEW_TOP", None)
    assert run(settings, {"default": {**XML, "NEW_KEY": 1}}, NEW_TOP=1) == []


def test_keys_only_some_gateways_read_are_known_for_them(settings):
    assert run(settings, {"default": SMPP, "soap": SOAP}) == []
    messages = run(settings, {"default": {**XML, "HOST": "127.0.0.1"}})
    assert ids(messages) == ["django_smsclub.W002"]


def test_a_gateway_class_may_declare_its_own_keys(settings, monkeypatch):
    from django_smsclub.gateways.locmem import LocmemGateway

    monkeypatch.setattr(LocmemGateway, "settings_keys", ("REGION",), raising=False)
    assert run(settings, {"default": {"BACKEND": "locmem", "SENDER": "Shop", "REGION": 1}}) == []


# --- E008 / E009 / E010: rate limit, URL, method ----------------------------------------------


@pytest.mark.parametrize("rate", [-1, "fast", float("inf"), float("nan"), True, [9]])
def test_bad_rate_limit_is_an_error_naming_it(settings, rate):
    messages = run(settings, {"default": {**XML, "RATE_LIMIT": rate}})
    assert ids(messages) == ["django_smsclub.E008"]
    assert isinstance(messages[0], Error)
    assert repr(rate) in messages[0].msg


@pytest.mark.parametrize("rate", [None, "", 0, 0.5, 9, "9"])
def test_rate_limits_the_limiter_accepts(settings, rate):
    assert run(settings, {"default": {**XML, "RATE_LIMIT": rate}}) == []


@pytest.mark.parametrize(
    "url", ["im.smsclub.mobi", "ftp://im.smsclub.mobi", "https://", "http:///path", 42]
)
def test_base_url_without_a_web_scheme_or_host_is_an_error(settings, url):
    messages = run(settings, {"default": {**XML, "BASE_URL": url}})
    assert ids(messages) == ["django_smsclub.E009"]
    assert repr(url) in messages[0].msg


def test_base_url_error_hides_credentials_in_the_url(settings):
    messages = run(settings, {"default": {**XML, "BASE_URL": f"smsclub:{PASSWORD}@host"}})
    assert ids(messages) == ["django_smsclub.E009"]
    assert PASSWORD not in messages[0].msg
    assert "host" in messages[0].msg


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765", "https://im.smsclub.mobi/", None, ""])
def test_usable_base_urls(settings, url):
    assert run(settings, {"default": {**XML, "BASE_URL": url}}) == []


def test_soap_balance_url_is_checked_too(settings):
    messages = run(settings, {"default": {**SOAP, "BALANCE_URL": "smpp.smsclub.mobi"}})
    assert ids(messages) == ["django_smsclub.E009"]


@pytest.mark.parametrize("method", ["PUT", "delete", 1])
def test_method_other_than_get_or_post_is_an_error(settings, method):
    messages = run(settings, {"default": {**HTTP, "METHOD": method}})
    assert ids(messages) == ["django_smsclub.E010"]
    assert repr(method) in messages[0].msg


@pytest.mark.parametrize("method", ["GET", "post", None])
def test_get_and_post_are_fine(settings, method):
    assert run(settings, {"default": {**HTTP, "METHOD": method}}) == []


# --- W003: a rate limit in a per-process cache ------------------------------------------------


@pytest.mark.parametrize("caches", [LOCMEM_CACHE, DUMMY_CACHE])
def test_rate_limit_in_a_per_process_cache_is_a_warning(settings, caches):
    settings.CACHES = caches
    settings.SMSCLUB = {"GATEWAYS": {"default": {**XML, "RATE_LIMIT": 5}, "other": XML}}
    messages = checks.check_rate_limit_cache()
    assert ids(messages) == ["django_smsclub.W003"]
    assert "'default'" in messages[0].msg and "'other'" not in messages[0].msg
    assert caches["default"]["BACKEND"].rpartition(".")[2] in messages[0].msg


def test_json_gateways_own_rate_limit_counts(settings):
    settings.CACHES = LOCMEM_CACHE
    settings.SMSCLUB = {"GATEWAYS": {"json": JSON}}
    assert ids(checks.check_rate_limit_cache()) == ["django_smsclub.W003"]
    settings.SMSCLUB = {"GATEWAYS": {"json": {**JSON, "RATE_LIMIT": 0}}}
    assert checks.check_rate_limit_cache() == []


def test_rate_limit_in_a_shared_cache_is_fine(settings):
    settings.CACHES = SHARED_CACHE
    settings.SMSCLUB = {"GATEWAYS": {"default": {**XML, "RATE_LIMIT": 5}}}
    assert checks.check_rate_limit_cache() == []


def test_no_rate_limit_needs_no_shared_cache(settings):
    settings.CACHES = LOCMEM_CACHE
    settings.SMSCLUB = {"GATEWAYS": {"default": XML, "broken": {"BACKEND": "no.such.Gateway"}}}
    assert checks.check_rate_limit_cache() == []


# --- W004 (--deploy): the password in GET URLs ------------------------------------------------


def test_http_gateway_with_get_is_a_deploy_warning(settings):
    settings.SMSCLUB = {"GATEWAYS": {"default": {**HTTP, "METHOD": "get"}, "post": HTTP}}
    assert ids(checks.check_password_in_urls()) == ["django_smsclub.W004"]
    assert "django_smsclub.W004" in ids(run_checks(include_deployment_checks=True))
    assert "django_smsclub.W004" not in ids(run_checks())


def test_get_warning_names_the_gateway_not_the_password(settings):
    settings.SMSCLUB = {"GATEWAYS": {"shop": {**HTTP, "METHOD": "GET"}}}
    (warning,) = checks.check_password_in_urls()
    assert "'shop'" in warning.msg and PASSWORD not in warning.msg


def test_other_gateways_ignore_method(settings):
    settings.SMSCLUB = {"GATEWAYS": {"default": {**XML, "METHOD": "GET"}, "http": HTTP}}
    assert checks.check_password_in_urls() == []


# --- W005: SQLite without its options ---------------------------------------------------------


#: The checks read DATABASES as written; no connection is made with these.
databases_override = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


def sqlite(**options):
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": "x.sqlite3", "OPTIONS": options}


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"timeout": 30},
        {"transaction_mode": "IMMEDIATE"},
        {"timeout": 30, "transaction_mode": "DEFERRED"},
    ],
)
@databases_override
def test_sqlite_without_timeout_and_immediate_is_a_warning(settings, options):
    settings.DATABASES = {"default": sqlite(**options)}
    (warning,) = checks.check_sqlite_options()
    assert warning.id == "django_smsclub.W005"
    assert "'timeout'" in warning.msg and "'transaction_mode': 'IMMEDIATE'" in warning.msg
    assert "database is locked" in warning.msg


@pytest.mark.parametrize("timeout", [0, 1, 4.9, "30s", None, True])
@databases_override
def test_sqlite_with_a_timeout_shorter_than_sqlites_own_is_a_warning(settings, timeout):
    settings.DATABASES = {"default": sqlite(timeout=timeout, transaction_mode="IMMEDIATE")}
    (warning,) = checks.check_sqlite_options()
    assert warning.id == "django_smsclub.W005" and "at least 5 s" in warning.msg


@pytest.mark.parametrize("timeout", [5, 30, 60.0])
@databases_override
def test_sqlite_with_a_timeout_of_five_seconds_or_more_is_fine(settings, timeout):
    settings.DATABASES = {"default": sqlite(timeout=timeout, transaction_mode="IMMEDIATE")}
    assert checks.check_sqlite_options() == []


@databases_override
def test_sqlite_with_its_options_is_fine(settings):
    settings.DATABASES = {"default": sqlite(timeout=20, transaction_mode="immediate")}
    assert checks.check_sqlite_options() == []


@databases_override
def test_other_databases_are_not_sqlite(settings):
    settings.DATABASES = {
        "default": {"ENGINE": "django.db.backends.postgresql", "NAME": "x"},
        "reports": sqlite(),
    }
    assert [w.msg.split(" ")[0] for w in checks.check_sqlite_options()] == ["DATABASES['reports']"]
