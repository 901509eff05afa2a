from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SmsClubConfig(AppConfig):
    name = "django_smsclub"
    verbose_name = _("SMSClub")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Wired here, above every layer: the services ask for sends with a signal and the
        # models' campaign methods reach the services through this config, so neither imports
        # a layer above it (tasks -> services -> models).
        from . import checks, services, signals, tasks  # noqa: F401  (checks registers itself)

        self.services = services
        # Prometheus metrics, when the [metrics] extra is installed (a no-op otherwise).
        from .metrics import collector

        collector.install()
        signals.send_requested.connect(
            tasks.on_send_requested, dispatch_uid="django_smsclub.tasks.on_send_requested"
        )
        signals.poll_requested.connect(
            tasks.on_poll_requested, dispatch_uid="django_smsclub.tasks.on_poll_requested"
        )
