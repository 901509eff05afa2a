from django.apps import AppConfig
from django.db.models.signals import post_migrate
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
        from .services import webhooks
        from .webhooks import checks as webhook_checks  # noqa: F401  (registers itself)

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
        signals.webhooks_requested.connect(
            tasks.on_webhooks_requested, dispatch_uid="django_smsclub.tasks.on_webhooks_requested"
        )
        # SMSCLUB["WEBHOOKS"] becomes endpoints at each migrate (and each minute, by beat).
        post_migrate.connect(
            webhooks.sync_endpoints_quietly,
            sender=self,
            dispatch_uid="django_smsclub.webhooks.sync_endpoints",
        )
