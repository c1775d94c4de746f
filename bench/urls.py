"""The project's URLs plus two floors to compare the TradingView link with.

- ``/bench/floor``: a bare view making the one adapter call the link makes, nothing else.
- ``/bench/fair/authorize`` (GET, then POST) and ``/bench/fair/token``: the link's three requests as minimal
  views through the same middleware and the same session sign-in. The GET renders a form with a CSRF token;
  the POST makes the adapter call, stores the adapter token (encrypted) under the hash of a fresh code and
  redirects with the code; the token request takes the code once and answers with the token. Six statements:
  session and user for each browser request, one INSERT, one UPDATE ... RETURNING; the last two prepared, as
  the link's own statements are (clientarea/prepared.py).
"""

import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template import engines
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from clientarea import crypto, http, prepared

_session = http.session(pool_maxsize=32)

FAIR_TABLE = "bench_fair_code"
_FORM = engines["django"].from_string(
    '<!doctype html><title>Link</title><form method="post">{% csrf_token %}'
    '<button name="action" value="allow">Link</button></form>'
)


def _generate_token() -> str:
    # Made as the link makes it (tradingview/adapter.py): a JSON body, no redirects followed.
    response = _session.post(
        f"{settings.TRADINGVIEW_ADAPTER_URL}/generate/token",
        json={
            "userId": 14601,
            "brokerNames": ["BESTBROKER"],
            "ctidTraderAccountIds": [137780091, 137792301],
            "isVerified": True,
        },
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": f"Bearer {settings.TRADINGVIEW_ADAPTER_TOKEN}",
        },
        timeout=http.timeout(),
        allow_redirects=False,
    )
    return str(response.json()["d"])


@csrf_exempt
def floor(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"access_token": _generate_token()})


@login_required
def fair_authorize(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(_FORM.render({}, request))
    token = _generate_token()
    code = secrets.token_urlsafe(32)
    with prepared.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {FAIR_TABLE} (code_hash, token, user_id) VALUES (%s, %s, %s)",
            [hashlib.sha256(code.encode()).hexdigest(), crypto.encrypt(token), request.user.pk],
        )
    return HttpResponseRedirect(f"https://tv.bench.example/callback?code={code}")


@csrf_exempt
@require_POST
def fair_token(request: HttpRequest) -> JsonResponse:
    code = request.POST.get("code", "")
    with prepared.cursor() as cursor:
        cursor.execute(
            f"UPDATE {FAIR_TABLE} SET used = true WHERE code_hash = %s AND NOT used RETURNING token",
            [hashlib.sha256(code.encode()).hexdigest()],
        )
        row = cursor.fetchone()
    if row is None:
        return JsonResponse({"error": "invalid_grant"}, status=400)
    return JsonResponse({"token_type": "bearer", "access_token": crypto.decrypt(row[0])})


def bare(request: HttpRequest) -> JsonResponse:
    """A request that does nothing but pass the middleware: the bare floor of any endpoint."""
    return JsonResponse({"ok": True})


urlpatterns = [
    path("bench/floor", floor),
    path("bench/bare", bare),
    path("bench/fair/authorize", fair_authorize),
    path("bench/fair/token", fair_token),
    path("", include("clientarea.urls")),
]
