"""A runnable project around django_smsclub: SQLite and the built-in emulator by default.

``DATABASE_URL`` switches the database (e.g. ``postgres://postgres@127.0.0.1:5432/test``),
``CELERY_BROKER_URL`` the broker (e.g. ``redis://127.0.0.1:6379/0``), ``REDIS_URL`` the cache.

``DJANGO_DEBUG=1`` turns DEBUG on (it is off by default).

Two more hooks let a test run Celery workers as processes of their own:
``SMSCLUB_JSON`` (a JSON object) replaces the ``SMSCLUB`` setting below, and
``CELERY_IMPORTS`` (comma-separated module names) are imported by every worker at start,
e.g. signal receivers that record what the workers did.
"""

import json
import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "testproject-insecure-key-for-development-only")
# Off unless asked for (DJANGO_DEBUG=1): the debug page shows settings and the environment.
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
# Whatever DEBUG says, error reports cleanse SMSCLUB_JSON and every password and token.
DEFAULT_EXCEPTION_REPORTER_FILTER = "testproject.reporting.CredentialsFilter"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_smsclub",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "testproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

WSGI_APPLICATION = "testproject.wsgi.application"

if os.environ.get("DATABASE_URL"):
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", str(BASE_DIR / "testproject.sqlite3")),
            # Workers, pollers and the web process write at once: BEGIN IMMEDIATE makes them
            # wait for each other (up to the timeout) instead of failing with "locked".
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
            # Tests race threads against each other; an in-memory database shared between
            # threads fails at once instead of waiting, so tests get a file, one per run.
            "TEST": {
                "NAME": os.path.join(
                    tempfile.gettempdir(), f"django_smsclub_test_{os.getpid()}.sqlite3"
                )
            },
        }
    }

if os.environ.get("REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("uk", "Українська"), ("ru", "Русский")]
TIME_ZONE = "Europe/Kyiv"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # The API's own throttle reads this scope; unset means no limit.
    "DEFAULT_THROTTLE_RATES": {
        "smsclub": os.environ.get("SMSCLUB_API_RATE") or None,
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "django-smsclub",
    "DESCRIPTION": "Send SMS through SMSClub: messages, campaigns, the account balance.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Read-only fields out of the request bodies, so clients (and schemathesis) see what to send.
    "COMPONENT_SPLIT_REQUEST": True,
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

EMULATOR_URL = os.environ.get("SMSCLUB_EMULATOR_URL", "http://127.0.0.1:8765")

SMSCLUB = {
    "DEFAULT_GATEWAY": os.environ.get("SMSCLUB_GATEWAY", "default"),
    "GATEWAYS": {
        "default": {
            "BACKEND": "django_smsclub.gateways.xml.XmlGateway",
            "USERNAME": os.environ.get("SMSCLUB_USERNAME", "380501234567"),
            "PASSWORD": os.environ.get("SMSCLUB_PASSWORD", "emulator-password"),
            "SENDER": "Shop",
            "BASE_URL": EMULATOR_URL,
        },
        "http": {
            "BACKEND": "django_smsclub.gateways.http.HttpGateway",
            "USERNAME": os.environ.get("SMSCLUB_USERNAME", "380501234567"),
            "PASSWORD": os.environ.get("SMSCLUB_PASSWORD", "emulator-password"),
            "SENDER": "Shop",
            "BASE_URL": EMULATOR_URL,
        },
        "json": {
            "BACKEND": "django_smsclub.gateways.json.JsonGateway",
            "TOKEN": os.environ.get("SMSCLUB_TOKEN", "emulator-token"),
            "SENDER": "Shop",
            "BASE_URL": EMULATOR_URL,
        },
    },
    # Where {unsubscribe_url} links in campaign texts lead: this project's "u/" page.
    "UNSUBSCRIBE_URL": os.environ.get("SMSCLUB_UNSUBSCRIBE_URL", "http://127.0.0.1:8000/u/"),
}

if os.environ.get("SMSCLUB_JSON"):
    SMSCLUB = json.loads(os.environ["SMSCLUB_JSON"])

CELERY_IMPORTS = [name for name in os.environ.get("CELERY_IMPORTS", "").split(",") if name]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_smsclub": {"handlers": ["console"], "level": "WARNING"}},
}
