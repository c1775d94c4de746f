from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from clientarea.api_docs import docs_view, schema_view
from clientarea.health import healthz, readyz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/schema/", schema_view, name="api-schema"),
    path("api/v1/docs/", docs_view, name="api-docs"),
    path("api/v1/", include("accounts.api_urls")),
    path("api/v1/tradingview/", include("tradingview.api_urls")),
    path("tradingview/", include("tradingview.urls")),
    path("", include("accounts.urls")),
]

if settings.SANDBOX:
    urlpatterns.insert(0, path("sandbox/", include("sandbox.urls")))

urlpatterns += [path("healthz", healthz, name="healthz"), path("readyz", readyz, name="readyz")]
