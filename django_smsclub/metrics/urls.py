"""``path("metrics", include("django_smsclub.metrics.urls"))`` in the project's urls."""

from django.urls import path

from .views import metrics_view

urlpatterns = [path("", metrics_view, name="smsclub-metrics")]
