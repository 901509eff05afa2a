from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/sms/", include("django_smsclub.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The unsubscribe page: SMSCLUB["UNSUBSCRIBE_URL"] is this site's address and "u/".
    path("", include("django_smsclub.urls")),
    # Prometheus metrics (the [metrics] extra); behind your proxy's access control in production.
    path("metrics", include("django_smsclub.metrics.urls")),
]
