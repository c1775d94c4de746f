from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.urls import include, path, reverse

from clientarea.api_docs import docs_view, schema_view
from clientarea.health import healthz, readyz


def admin_login_redirect(request: HttpRequest) -> HttpResponse:
    target = request.GET.get("next") or reverse("admin:index")
    return redirect_to_login(target, reverse("login"))


urlpatterns = [
    # Staff sign in through the same page as traders, with its two-step sign-in.
    path("admin/login/", admin_login_redirect),
    path("admin/", admin.site.urls),
    path("api/v1/schema/", schema_view, name="api-schema"),
    path("api/v1/docs/", docs_view, name="api-docs"),
    path("api/v1/", include("accounts.api_urls")),
    path("api/v1/tradingview/", include("tradingview.api_urls")),
    path("tradingview/", include("tradingview.urls")),
    path("", include("branding.urls")),
    path("", include("preferences.urls")),
    path("", include("twofactor.urls")),
    path("", include("accounts.urls")),
]

if settings.SANDBOX:
    urlpatterns.insert(0, path("sandbox/", include("sandbox.urls")))

urlpatterns += [path("healthz", healthz, name="healthz"), path("readyz", readyz, name="readyz")]
