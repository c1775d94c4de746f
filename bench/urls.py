"""The project's URLs plus the floor: a bare view making the adapter call the link makes, nothing else."""

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


urlpatterns = [path("bench/floor", floor), path("", include("clientarea.urls"))]
