"""The project's URLs plus the floors: a bare view, and one making the adapter call the link makes."""

import json

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from clientarea import http

_session = http.session(pool_maxsize=32)


@csrf_exempt
def floor(request: HttpRequest) -> JsonResponse:
    response = _session.post(
        f"{settings.TRADINGVIEW_ADAPTER_URL}/generate/token",
        data=json.dumps(
            {
                "userId": 14601,
                "brokerNames": ["BESTBROKER"],
                "ctidTraderAccountIds": [137780091, 137792301],
                "isVerified": True,
            }
        ),
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": f"Bearer {settings.TRADINGVIEW_ADAPTER_TOKEN}",
        },
        timeout=http.timeout(),
    )
    body = response.json()
    return JsonResponse({"access_token": body["d"]})


@csrf_exempt
def bare(request: HttpRequest) -> JsonResponse:
    """A request that does nothing but pass the middleware: the bare floor of any endpoint."""
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/floor", floor), path("bench/bare", bare), path("", include("clientarea.urls"))]
