from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from clientarea.health import healthz, readyz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("accounts.api_urls")),
    path("api/v1/tradingview/", include("tradingview.api_urls")),
    path("tradingview/", include("tradingview.urls")),
    path("", include("branding.urls")),
    path("", include("preferences.urls")),
    path("", include("accounts.urls")),
]

if settings.SANDBOX:
    urlpatterns.insert(0, path("sandbox/", include("sandbox.urls")))

urlpatterns += [path("healthz", healthz, name="healthz"), path("readyz", readyz, name="readyz")]
