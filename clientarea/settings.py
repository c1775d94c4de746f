"""Settings for clientarea, read from the environment (see .env.example and the README's Configuration).

Each setting is defined once, in its concern's section, read top to bottom. How a value is read (required
secrets, development defaults, the sandbox's addresses) is in clientarea/environment.py.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ImproperlyConfigured

from clientarea.environment import (
    BASE_DIR,
    DEBUG,
    LOCAL_DIR,
    SANDBOX,
    color,
    env,
    every,
    fernet_keys,
    peer_url,
    secret,
    secret_key,
)

# --- Core: the applications, the request pipeline, templates, static files, sign-in ---
SECRET_KEY = secret_key()
# Newest first: the first key encrypts, all decrypt (clientarea.crypto). Rotate with manage.py rotate_token_keys.
TOKEN_ENCRYPTION_KEYS = fernet_keys("TOKEN_ENCRYPTION_KEYS")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "axes",
    "accounts",
    "tradingview",
    *(["sandbox"] if SANDBOX else []),
    "clientarea",
    "drf_spectacular_sidecar",
    "csp",
    "branding",
    "preferences",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "twofactor",
    "notifications",
]
MIDDLEWARE = [
    # Outermost: every log line of the request carries its id; probes answer before anything else runs.
    "clientarea.request_id.RequestIdMiddleware",
    "clientarea.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    # A NUL byte or an unpaired surrogate in a query or form parameter is a 400, before any view reads it.
    "clientarea.inputs.RejectInvalidCharactersMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "preferences.middleware.TraderLanguageMiddleware",
    "clientarea.sessions.IdleTimeoutMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "twofactor.middleware.StaffTwoFactorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "notifications.devices.DeviceCookieMiddleware",
    # Last, as django-axes requires.
    "axes.middleware.AxesMiddleware",
]
ROOT_URLCONF = "clientarea.urls"
WSGI_APPLICATION = "clientarea.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "clientarea.context_processors.site",
                "branding.context_processors.brand",
            ],
            "loaders": ["clientarea.template_loader.Loader"],  # cached, a copy per language: see the module
        },
    },
]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.TraderModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
# The messages framework keeps its messages in the session, never in a cookie of their own.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "clientarea API",
    "DESCRIPTION": "The trader-facing JSON API of the client area. Every endpoint is scoped to the signed-in trader.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from our own static files (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# API docs at /api/v1/docs/: "public", "staff" or "off". Production defaults to staff.
API_DOCS = env.str("API_DOCS", default="public" if DEBUG else "staff")

# --- Database, cache and sessions: every connection attempt and every wait has a deadline ---
# PostgreSQL: a connection attempt, an unanswered packet and (in web processes) a statement all have a deadline.
DATABASE_CONNECT_TIMEOUT = env.int("DATABASE_CONNECT_TIMEOUT", default=3)
DATABASE_TCP_USER_TIMEOUT_MS = env.int("DATABASE_TCP_USER_TIMEOUT_MS", default=10_000)
DATABASE_WEB_STATEMENT_TIMEOUT_MS = env.int("DATABASE_WEB_STATEMENT_TIMEOUT_MS", default=15_000)
# The hot paths prepare a few statements once per connection (clientarea/prepared.py): 0 for a pooler that
# cannot keep prepared statements (PgBouncer before 1.21, or without max_prepared_statements).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
# DATABASE_URL unset: the embedded SQLite file. What the URL itself sets wins over the defaults here.
_database = env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
_options: dict[str, object] = {}
if _database["ENGINE"].endswith("postgresql"):
    _options.update(connect_timeout=DATABASE_CONNECT_TIMEOUT, tcp_user_timeout=DATABASE_TCP_USER_TIMEOUT_MS)
    _options.update(keepalives=1, keepalives_idle=30)
    _options.update({} if DATABASE_PREPARED_STATEMENTS else {"prepare_threshold": None})
elif _database["ENGINE"].endswith("sqlite3"):
    # make run's processes share the file: readers never block the writer (WAL), a transaction takes the write
    # lock as it begins (no deadlock upgrading a read to a write), and a writer waits up to 20 s for another.
    _options.update(init_command="PRAGMA journal_mode=WAL;", transaction_mode="IMMEDIATE", timeout=20)
_database["OPTIONS"] = {**_options, **_database.get("OPTIONS", {})}
_connections = {"CONN_MAX_AGE": env.int("CONN_MAX_AGE", default=60), "CONN_HEALTH_CHECKS": True}
DATABASES = {"default": {**_connections, **_database}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# REDIS_URL unset: embedded mode, tasks run in-process, no broker and the local-memory cache.
REDIS_URL = env.str("REDIS_URL", default="")
REDIS_CONNECT_TIMEOUT = env.float("REDIS_CONNECT_TIMEOUT", default=1.0)
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=2.0)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "clientarea.cache.RedisCache",  # Django's, with one client per pool
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
                "socket_timeout": REDIS_SOCKET_TIMEOUT,
            },
        }
    }
# Sessions live in PostgreSQL, so a Redis outage signs nobody out and keeps every page that needs no task.
SESSION_ENGINE = "clientarea.session_backend"  # Django's database sessions, read prepared
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=14 * 24 * 3600)
# Idle timeouts in seconds, besides the absolute SESSION_COOKIE_AGE: staff and traders separately.
SESSION_IDLE_TIMEOUT_STAFF_SECONDS = env.int("SESSION_IDLE_TIMEOUT_STAFF_SECONDS", default=30 * 60)
SESSION_IDLE_TIMEOUT_SECONDS = env.int("SESSION_IDLE_TIMEOUT_SECONDS", default=12 * 3600)

# --- Security: cookies and HTTPS, browser policy, sign-in throttling, client addresses, probes ---
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
# Content-Security-Policy (django-csp): only our own scripts, styles and images; never framed.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        # The sign-in and consent forms post to us; TradingView's redirect URI is reached by a redirect.
        "form-action": ["'self'", "https:", "http://127.0.0.1:*", "http://localhost:*"],
    }
}
# Browser features no page uses, switched off for every page.
_UNUSED_FEATURES = (
    "accelerometer",
    "camera",
    "geolocation",
    "gyroscope",
    "magnetometer",
    "microphone",
    "payment",
    "usb",
)
PERMISSIONS_POLICY: dict[str, list[str]] = {feature: [] for feature in _UNUSED_FEATURES}
# How many reverse proxies in front of the web processes append to X-Forwarded-For (0: the header is ignored
# and the socket peer is the client). The sign-in throttle and the token endpoint count per client address.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# Failed sign-ins are throttled per username and client address together, and per address alone at a much
# higher limit (clientarea/signin.py), so one attacker cannot lock everyone behind a proxy out.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_ADDRESS_FAILURE_LIMIT = env.int("AXES_ADDRESS_FAILURE_LIMIT", default=50)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = "clientarea.signin.lockout_parameters"
AXES_CLIENT_IP_CALLABLE = "clientarea.client_ip.client_ip"
AXES_LOCKOUT_CALLABLE = "clientarea.signin.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_SENSITIVE_PARAMETERS = ["password", "password1", "password2", "new_password1", "new_password2"]
# Sign-up mails: at most so many sign-ups per client address (a 429 page past it), and mails to one address.
SIGN_UP_CLIENT_RATE = env.str("SIGN_UP_CLIENT_RATE", default="10/h")
SIGN_UP_EMAIL_RATE = env.str("SIGN_UP_EMAIL_RATE", default="3/h")
# Two-step sign-in (django-otp): staff reach the admin only after it (on by default in production).
TWO_FACTOR_REQUIRED_FOR_STAFF = env.bool("TWO_FACTOR_REQUIRED_FOR_STAFF", default=not DEBUG)
OTP_TOTP_ISSUER = None
# /readyz: answered within HEALTH_READYZ_BUDGET_SECONDS whatever is down, cached for HEALTH_CACHE_SECONDS, and
# served only to HEALTH_ALLOWED_NETWORKS or to a request carrying HEALTH_TOKEN (Authorization: Bearer ...).
HEALTH_READYZ_BUDGET_SECONDS = env.float("HEALTH_READYZ_BUDGET_SECONDS", default=0.8)
HEALTH_CACHE_SECONDS = env.float("HEALTH_CACHE_SECONDS", default=3.0)
HEALTH_TOKEN = env.str("HEALTH_TOKEN", default="")
HEALTH_ALLOWED_NETWORKS = env.list(
    "HEALTH_ALLOWED_NETWORKS",
    default=["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
)
# Seconds each readiness check may take (Redis ping, Celery worker ping).
HEALTH_CHECK_TIMEOUT = env.float("HEALTH_CHECK_TIMEOUT", default=0.5)
# Set where an Open API gateway must be running: /readyz then fails when its heartbeat goes stale.
HEALTH_GATEWAY_EXPECTED = env.bool("HEALTH_GATEWAY_EXPECTED", default=False)
HEALTH_GATEWAY_STALE_SECONDS = env.int("HEALTH_GATEWAY_STALE_SECONDS", default=60)
HEALTH_GATEWAY_ENVIRONMENTS = env.list("HEALTH_GATEWAY_ENVIRONMENTS", default=["live", "demo"])

# --- Peers: cTrader ID and Open API, the TradingView adapter, the broker WebServices, outgoing HTTP ---
SANDBOX_HTTP = env.str("SANDBOX_HTTP", default="http://127.0.0.1:8001").rstrip("/")
SANDBOX_WS_LIVE = env.str("SANDBOX_WS_LIVE", default="ws://127.0.0.1:8037")
SANDBOX_WS_DEMO = env.str("SANDBOX_WS_DEMO", default="ws://127.0.0.1:8036")
CTRADER_CLIENT_ID = secret("CTRADER_CLIENT_ID", sandbox_default="sandbox-client", dev_default=lambda: "")
CTRADER_CLIENT_SECRET = secret(
    "CTRADER_CLIENT_SECRET", sandbox_default="sandbox-secret", dev_default=lambda: ""
)
CTRADER_REDIRECT_URI = env.str("CTRADER_REDIRECT_URI", default=f"{SITE_URL}/ctrader/callback/")
CTRADER_AUTH_URL = peer_url(
    "CTRADER_AUTH_URL",
    "https://id.ctrader.com/my/settings/openapi/grantingaccess/",
    f"{SANDBOX_HTTP}/ctrader-id/grantingaccess/",
)
CTRADER_TOKEN_URL = peer_url(
    "CTRADER_TOKEN_URL", "https://openapi.ctrader.com/apps/token", f"{SANDBOX_HTTP}/ctrader-id/apps/token"
)
CTRADER_SCOPE = env.str("CTRADER_SCOPE", default="accounts")
CTRADER_OPENAPI_LIVE_URL = peer_url(
    "CTRADER_OPENAPI_LIVE_URL", "wss://live.ctraderapi.com:5036", SANDBOX_WS_LIVE
)
CTRADER_OPENAPI_DEMO_URL = peer_url(
    "CTRADER_OPENAPI_DEMO_URL", "wss://demo.ctraderapi.com:5036", SANDBOX_WS_DEMO
)
OPENAPI_REQUEST_TIMEOUT = env.float("OPENAPI_REQUEST_TIMEOUT", default=10.0)
TRADINGVIEW_ADAPTER_URL = peer_url("TRADINGVIEW_ADAPTER_URL", "", f"{SANDBOX_HTTP}/adapter").rstrip("/")
TRADINGVIEW_ADAPTER_TOKEN = secret(
    "TRADINGVIEW_ADAPTER_TOKEN", sandbox_default="sandbox-adapter-bearer", dev_default=lambda: ""
)
if not DEBUG and not TRADINGVIEW_ADAPTER_URL:
    raise ImproperlyConfigured(
        "The environment variable TRADINGVIEW_ADAPTER_URL is required when DEBUG is off."
    )
# The broker WebServices API, one host per environment (https://HOST:PORT), and each one's manager; cTID
# calls go to the live host (else demo). Unset: traders cannot open accounts from the client area.
CTRADER_WEBSERVICES_LIVE_URL = peer_url(
    "CTRADER_WEBSERVICES_LIVE_URL", "", f"{SANDBOX_HTTP}/webservices/live"
).rstrip("/")
CTRADER_WEBSERVICES_DEMO_URL = peer_url(
    "CTRADER_WEBSERVICES_DEMO_URL", "", f"{SANDBOX_HTTP}/webservices/demo"
).rstrip("/")
CTRADER_MANAGER_LIVE_LOGIN = env.int("CTRADER_MANAGER_LIVE_LOGIN", default=30001 if SANDBOX else 0)
CTRADER_MANAGER_LIVE_PASSWORD = env.str(
    "CTRADER_MANAGER_LIVE_PASSWORD", default="sandbox-manager-live" if SANDBOX else ""
)
CTRADER_MANAGER_DEMO_LOGIN = env.int("CTRADER_MANAGER_DEMO_LOGIN", default=30002 if SANDBOX else 0)
CTRADER_MANAGER_DEMO_PASSWORD = env.str(
    "CTRADER_MANAGER_DEMO_PASSWORD", default="sandbox-manager-demo" if SANDBOX else ""
)
# Outgoing HTTP (clientarea/http.py): connect and read timeouts in seconds, bounded connect retries, and the
# overall limit of one request (connect, send, headers and the whole body) whatever the peer's pace: per-read
# timeouts alone let a peer that trickles bytes hold a call for ever.
HTTP_CONNECT_TIMEOUT = env.float("HTTP_CONNECT_TIMEOUT", default=5.0)
HTTP_READ_TIMEOUT = env.float("HTTP_READ_TIMEOUT", default=15.0)
HTTP_CONNECT_RETRIES = env.int("HTTP_CONNECT_RETRIES", default=2)
HTTP_DEADLINE_SECONDS = env.float("HTTP_DEADLINE_SECONDS", default=30.0)
# Overall limit of one TradingView adapter call; below the 120 s after which a consent still waiting for the
# adapter is cleaned up.
TRADINGVIEW_ADAPTER_DEADLINE_SECONDS = env.float("TRADINGVIEW_ADAPTER_DEADLINE_SECONDS", default=20.0)
if not 0 < TRADINGVIEW_ADAPTER_DEADLINE_SECONDS <= 60:
    raise ImproperlyConfigured("TRADINGVIEW_ADAPTER_DEADLINE_SECONDS must be between 0 and 60 seconds.")

# --- cTID tokens and accounts: connect, the single-flight refresh and its sweep, account sync ---
CTID_CONNECT_STATE_TTL_SECONDS = env.int("CTID_CONNECT_STATE_TTL_SECONDS", default=600)
# Tokens expiring within this many days are refreshed by the sweep (Spotware's access tokens live ~30 days).
TOKEN_REFRESH_WINDOW_DAYS = env.float("TOKEN_REFRESH_WINDOW_DAYS", default=7)
TOKEN_SWEEP_INTERVAL_SECONDS = env.int("TOKEN_SWEEP_INTERVAL_SECONDS", default=300)
TOKEN_SWEEP_BATCH_SIZE = env.int("TOKEN_SWEEP_BATCH_SIZE", default=1000)
# Far longer than the token call can take (connect + read timeout and connect retries), so a lease never
# expires while its holder is still talking to the token endpoint.
TOKEN_REFRESH_LEASE_SECONDS = env.int("TOKEN_REFRESH_LEASE_SECONDS", default=120)
# Timeout of one token-endpoint call (connect, read), seconds.
TOKEN_HTTP_CONNECT_TIMEOUT = env.float("TOKEN_HTTP_CONNECT_TIMEOUT", default=5.0)
TOKEN_HTTP_READ_TIMEOUT = env.float("TOKEN_HTTP_READ_TIMEOUT", default=15.0)
# Overall limit of one token-endpoint call, connect retries included. It must stay well below the refresh
# lease: a refresh still talking to the endpoint when its lease ran out would let a second one spend the
# same single-use refresh token and end the chain.
TOKEN_HTTP_DEADLINE_SECONDS = env.float("TOKEN_HTTP_DEADLINE_SECONDS", default=30.0)
if TOKEN_HTTP_DEADLINE_SECONDS * 2 > TOKEN_REFRESH_LEASE_SECONDS:
    raise ImproperlyConfigured(
        "TOKEN_HTTP_DEADLINE_SECONDS must be at most half of TOKEN_REFRESH_LEASE_SECONDS."
    )
# How long a caller that finds the refresh already in flight waits for its result.
TOKEN_REFRESH_COALESCE_WAIT_SECONDS = env.float("TOKEN_REFRESH_COALESCE_WAIT_SECONDS", default=30.0)
# A refresh asked for without naming the version it found stale (staff's "Refresh now") within this many
# seconds of the last completed refresh takes that refresh's result instead of calling the endpoint again.
TOKEN_REFRESH_RECENT_SECONDS = env.float("TOKEN_REFRESH_RECENT_SECONDS", default=30.0)
# After a refresh whose answer was lost, a queued follow-up checks the chain this many seconds later (then
# backs off like other retries); a periodic task catches any follow-up whose message was lost, and is the
# embedded mode's only follow-up.
TOKEN_REFRESH_FOLLOW_UP_SECONDS = env.float("TOKEN_REFRESH_FOLLOW_UP_SECONDS", default=30.0)
ACCOUNT_SYNC_INTERVAL_SECONDS = env.int("ACCOUNT_SYNC_INTERVAL_SECONDS", default=6 * 3600)

# --- TradingView: the code flow, the token endpoint, the adapter tokens ---
# expires_in handed to TradingView: it refreshes before this runs out (TradingView recommends 15-30 minutes);
# never above 2,147,483 s (TradingView's 32-bit millisecond ceiling) nor the adapter token's remaining life.
TRADINGVIEW_TOKEN_EXPIRES_IN = min(env.int("TRADINGVIEW_TOKEN_EXPIRES_IN", default=1800), 2_147_483)
# How long a superseded adapter token stays valid after a refresh, so TradingView can switch over.
TRADINGVIEW_REFRESH_GRACE_SECONDS = env.int("TRADINGVIEW_REFRESH_GRACE_SECONDS", default=600)
TRADINGVIEW_CODE_TTL_SECONDS = min(env.int("TRADINGVIEW_CODE_TTL_SECONDS", default=60), 60)
TRADINGVIEW_ADAPTER_TOKEN_LIFETIME_DAYS = env.int("TRADINGVIEW_ADAPTER_TOKEN_LIFETIME_DAYS", default=30)
# Only accounts flagged "cTrader/TradingView" may be linked (Spotware allows either policy).
TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS = env.bool("TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS", default=False)
# First retry of a failed /logout; later retries back off exponentially (with jitter, capped).
TRADINGVIEW_LOGOUT_RETRY_SECONDS = env.float("TRADINGVIEW_LOGOUT_RETRY_SECONDS", default=10.0)
TRADINGVIEW_LOGOUT_RETRY_CAP_SECONDS = env.float("TRADINGVIEW_LOGOUT_RETRY_CAP_SECONDS", default=900.0)
# A spent refresh token presented again by its client within this many seconds (a lost response) gets the same
# answer again; later it revokes the whole link.
TRADINGVIEW_REFRESH_REUSE_SECONDS = env.int("TRADINGVIEW_REFRESH_REUSE_SECONDS", default=60)
# Retry-After of the 503 answered when the adapter is down and the current adapter token has run out.
TRADINGVIEW_RETRY_AFTER_SECONDS = env.int("TRADINGVIEW_RETRY_AFTER_SECONDS", default=30)
# The sweep also revokes ineligible grants and consents never exchanged: keep it at a minute or less.
TRADINGVIEW_REVOCATION_SWEEP_SECONDS = env.float("TRADINGVIEW_REVOCATION_SWEEP_SECONDS", default=60.0)
# Failed client authentications at the token endpoint allowed per client and address, and per address, within
# the window (seconds), before that address waits (429 with Retry-After).
TRADINGVIEW_TOKEN_FAILURE_WINDOW_SECONDS = env.int("TRADINGVIEW_TOKEN_FAILURE_WINDOW_SECONDS", default=600)
TRADINGVIEW_TOKEN_CLIENT_FAILURE_LIMIT = env.int("TRADINGVIEW_TOKEN_CLIENT_FAILURE_LIMIT", default=10)
TRADINGVIEW_TOKEN_ADDRESS_FAILURE_LIMIT = env.int("TRADINGVIEW_TOKEN_ADDRESS_FAILURE_LIMIT", default=30)

# --- Open API gateway (manage.py openapi_gateway, one or several processes) ---
# Heartbeat, per-connection request limit, reconnect backoff cap, how often the database is polled.
OPENAPI_HEARTBEAT_SECONDS = env.float("OPENAPI_HEARTBEAT_SECONDS", default=10.0)
OPENAPI_MAX_REQUESTS_PER_SECOND = env.int("OPENAPI_MAX_REQUESTS_PER_SECOND", default=50)
OPENAPI_RECONNECT_MAX_SECONDS = env.float("OPENAPI_RECONNECT_MAX_SECONDS", default=60.0)
OPENAPI_DB_POLL_SECONDS = env.float("OPENAPI_DB_POLL_SECONDS", default=5.0)
# Every reconnect waits at least this long (also after a maintenance end that has passed), and
# reconnections after a maintenance window or a retryAfter are spread at random over this many seconds.
OPENAPI_RECONNECT_FLOOR_SECONDS = max(env.float("OPENAPI_RECONNECT_FLOOR_SECONDS", default=1.0), 1.0)
OPENAPI_RECONNECT_SPREAD_SECONDS = env.float("OPENAPI_RECONNECT_SPREAD_SECONDS", default=5.0)
# A refused application (CH_CLIENT_AUTH_FAILURE, CH_OA_CLIENT_NOT_FOUND) alerts staff and is retried slowly,
# from the first delay up to the cap; with OPENAPI_EXIT_ON_REFUSAL=1 the gateway exits non-zero instead.
OPENAPI_REFUSED_RETRY_SECONDS = env.float("OPENAPI_REFUSED_RETRY_SECONDS", default=60.0)
OPENAPI_REFUSED_RETRY_MAX_SECONDS = env.float("OPENAPI_REFUSED_RETRY_MAX_SECONDS", default=900.0)
OPENAPI_EXIT_ON_REFUSAL = env.bool("OPENAPI_EXIT_ON_REFUSAL", default=False)
# The pacer aims this fraction below OPENAPI_MAX_REQUESTS_PER_SECOND.
OPENAPI_PACER_MARGIN = env.float("OPENAPI_PACER_MARGIN", default=0.1)
# A connection silent (no frame of any kind) for this many heartbeat intervals is closed and reconnected.
OPENAPI_SILENCE_HEARTBEATS = env.float("OPENAPI_SILENCE_HEARTBEATS", default=3.0)
# Every process holds a lease in PostgreSQL, renewed about every sixth of this time; the cTIDs of a process
# that stops renewing (killed, frozen, cut off) move to the others after this many seconds.
OPENAPI_GATEWAY_LEASE_SECONDS = env.float("OPENAPI_GATEWAY_LEASE_SECONDS", default=30.0)
# Connections per environment in each process (each with its own pacer). Spotware advises few connections
# per application: raise it only when one connection's rate limit is the bottleneck.
OPENAPI_CONNECTIONS_PER_ENVIRONMENT = max(env.int("OPENAPI_CONNECTIONS_PER_ENVIRONMENT", default=1), 1)
# At most this many cTIDs move to a joining process per lease tick.
OPENAPI_GATEWAY_REBALANCE_BATCH = env.int("OPENAPI_GATEWAY_REBALANCE_BATCH", default=200)
# The gateways follow a change feed (database triggers), woken at once by LISTEN/NOTIFY when this is on;
# every held account is reloaded anyway this often.
OPENAPI_GATEWAY_LISTEN = env.bool("OPENAPI_GATEWAY_LISTEN", default=True)
OPENAPI_GATEWAY_FULL_RELOAD_SECONDS = env.float("OPENAPI_GATEWAY_FULL_RELOAD_SECONDS", default=600.0)

# --- Account figures (equity, margin, open P/L) and their history ---
# How often every account's figures are read: WebServices pages with manager credentials, else Open API.
FIGURES_REFRESH_SECONDS = env.int("FIGURES_REFRESH_SECONDS", default=60)
# Figures read longer ago than this are shown as stale, never as current.
FIGURES_STALE_SECONDS = env.int("FIGURES_STALE_SECONDS", default=300)
# Opening an account page whose figures are older than this queues a fresh Open API read of that account.
FIGURES_ON_VIEW_REFRESH_SECONDS = env.int("FIGURES_ON_VIEW_REFRESH_SECONDS", default=30)
# Margin level (%) under which an account is flagged, unless its jurisdiction sets its own.
FIGURES_MARGIN_CALL_LEVEL = Decimal(env.str("FIGURES_MARGIN_CALL_LEVEL", default="100"))
# A history point is added when the balance moves, or the equity moves and either this many seconds passed
# since the account's last point or the move is at least this many percent.
FIGURES_SNAPSHOT_SECONDS = env.int("FIGURES_SNAPSHOT_SECONDS", default=60)
FIGURES_SIGNIFICANT_CHANGE_PERCENT = env.float("FIGURES_SIGNIFICANT_CHANGE_PERCENT", default=1.0)
# History retention: full resolution, then the last point of each hour, then of each day, then nothing.
FIGURES_RAW_RETENTION_HOURS = env.int("FIGURES_RAW_RETENTION_HOURS", default=24)
FIGURES_HOURLY_RETENTION_DAYS = env.int("FIGURES_HOURLY_RETENTION_DAYS", default=31)
FIGURES_DAILY_RETENTION_DAYS = env.int("FIGURES_DAILY_RETENTION_DAYS", default=1830)
FIGURES_RETENTION_INTERVAL_SECONDS = env.int("FIGURES_RETENTION_INTERVAL_SECONDS", default=3600)
# Most points one history request may return (the API answers 400 above it).
FIGURES_HISTORY_MAX_POINTS = env.int("FIGURES_HISTORY_MAX_POINTS", default=3000)

# --- Account opening (broker WebServices) and email ---
# The language sent with a new cTID (ctid/create preferredLanguage).
CTRADER_CTID_LANGUAGE = env.str("CTRADER_CTID_LANGUAGE", default="EN")
# Opening retries of transient WebServices failures: exponential from the base, with jitter, capped.
ACCOUNT_OPENING_RETRY_BASE_SECONDS = env.float("ACCOUNT_OPENING_RETRY_BASE_SECONDS", default=20.0)
ACCOUNT_OPENING_RETRY_CAP_SECONDS = env.float("ACCOUNT_OPENING_RETRY_CAP_SECONDS", default=900.0)
ACCOUNT_OPENING_MAX_ATTEMPTS = env.int("ACCOUNT_OPENING_MAX_ATTEMPTS", default=10)
# Embedded mode (no broker): retry an interrupted opening from a timer in the same process.
ACCOUNT_OPENING_RETRY_IN_PROCESS = env.bool("ACCOUNT_OPENING_RETRY_IN_PROCESS", default=True)
# How long an opening in progress may be resumed with the trading password it was submitted with (seconds);
# after that the trader is asked for it again. The password's hash lives only in the queued task, encrypted.
ACCOUNT_OPENING_SECRET_TTL_SECONDS = env.int("ACCOUNT_OPENING_SECRET_TTL_SECONDS", default=86400)
# Lifetime of an email verification link (seconds).
EMAIL_VERIFICATION_TTL_SECONDS = env.int("EMAIL_VERIFICATION_TTL_SECONDS", default=2 * 86400)
# Email is sent by Celery; a slow mail server delays a retry, never a page. With SANDBOX=1 and no
# EMAIL_BACKEND, mail goes to the sandbox's local SMTP server (manage.py sandbox starts it).
SANDBOX_SMTP = env.str("SANDBOX_SMTP", default="127.0.0.1:8025")
_sandbox_mail = SANDBOX and "EMAIL_BACKEND" not in env.ENVIRON
_smtp_backend = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default=_smtp_backend if _sandbox_mail or not DEBUG else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = SANDBOX_SMTP.rsplit(":", 1)[0] if _sandbox_mail else env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = int(SANDBOX_SMTP.rsplit(":", 1)[1]) if _sandbox_mail else env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured(
        "Set EMAIL_USE_TLS (STARTTLS, port 587) or EMAIL_USE_SSL (port 465), not both."
    )
# Seconds one SMTP conversation may take.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="clientarea@localhost")

# --- Tasks and their schedule: Celery on Redis, or in-process threads in embedded mode ---
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 90
CELERY_TIMEZONE = "UTC"
# Celery workers keep the JSON logging below instead of installing their own plain-text handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    # A stalled Redis must not hold a web request: every socket operation of the broker has a deadline.
    "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
    "socket_timeout": REDIS_SOCKET_TIMEOUT,
}
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_CONNECT_TIMEOUT
# Publishing from a web request: one quick retry, then the caller is told the queue is unavailable.
CELERY_TASK_PUBLISH_RETRY_POLICY = dict(max_retries=1, interval_start=0, interval_step=0.2, interval_max=0.2)
# Retries of transient task failures: exponential from the base, with jitter, capped, at most this many.
TASK_RETRY_BASE_SECONDS = env.float("TASK_RETRY_BASE_SECONDS", default=30.0)
TASK_RETRY_CAP_SECONDS = env.float("TASK_RETRY_CAP_SECONDS", default=3600.0)
TASK_MAX_RETRIES = env.int("TASK_MAX_RETRIES", default=8)
# Embedded mode (no REDIS_URL): threads of the web process that run the work a request queues (connect,
# "Refresh accounts", the admin's sync and refresh), so no request waits on the Open API.
EMBEDDED_WORKER_THREADS = env.int("EMBEDDED_WORKER_THREADS", default=2)
# How often the embedded mode's periodic loop (manage.py run_periodic) looks for due entries of the schedule.
PERIODIC_TICK_SECONDS = env.float("PERIODIC_TICK_SECONDS", default=5.0)
_pending_consents = env.float("CTID_PENDING_CONSENT_SWEEP_SECONDS", default=300.0)
_lost_refreshes = env.float("TOKEN_REFRESH_FOLLOW_UP_SWEEP_SECONDS", default=300.0)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "sweep-due-ctid-tokens": every(
        "accounts.tasks.sweep_due_tokens", TOKEN_SWEEP_INTERVAL_SECONDS, expires=TOKEN_SWEEP_INTERVAL_SECONDS
    ),
    "sync-all-ctid-accounts": every(
        "accounts.tasks.sync_all_accounts",
        ACCOUNT_SYNC_INTERVAL_SECONDS,
        expires=ACCOUNT_SYNC_INTERVAL_SECONDS,
    ),
    # Consents whose cTID could not be identified during the callback are placed by a queued task; this entry
    # catches the rest (and is the embedded mode's way of placing them).
    "identify-pending-ctid-consents": every(
        "accounts.tasks.identify_pending_ctid_consents", _pending_consents, expires=300.0
    ),
    "follow-up-lost-token-refreshes": every(
        "accounts.tasks.follow_up_lost_refreshes", _lost_refreshes, expires=300.0
    ),
    "tradingview-revocation-sweep": every(
        "tradingview.tasks.grant_revocation_sweep", TRADINGVIEW_REVOCATION_SWEEP_SECONDS
    ),
    "refresh-account-figures": every(
        "accounts.tasks.refresh_all_figures", FIGURES_REFRESH_SECONDS, expires=FIGURES_REFRESH_SECONDS
    ),
    "account-history-retention": every(
        "accounts.tasks.account_history_retention",
        FIGURES_RETENTION_INTERVAL_SECONDS,
        expires=FIGURES_RETENTION_INTERVAL_SECONDS,
    ),
}

# --- Logging: structured JSON to stderr, each line with its request id; known secret values blanked ---
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "clientarea.request_id.RequestIdFilter"}},
    "formatters": {
        "json": {
            "()": "clientarea.logs.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "plain": {
            "()": "clientarea.logs.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own console handlers print unscrubbed lines (request lines carry query strings): Django's
        # loggers write through the handler above instead, which redacts like the JSON log.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # urllib3 logs full request URLs at DEBUG, and token URLs carry secrets in the query string.
        "urllib3": {"level": "WARNING"},
        # websockets logs every frame at DEBUG, and Open API frames carry access tokens and the client secret.
        "websockets": {"level": "INFO"},
    },
}

# --- Brand and languages: the broker's name, colours and contacts (staff override each in the admin); the
# TradingView flow's `lang`, else the trader's profile, else the browser
BRAND_NAME = env.str("BRAND_NAME", default="Client area")
BRAND_PRIMARY_COLOR = color("BRAND_PRIMARY_COLOR", "#0b5cad")
BRAND_HEADER_COLOR = color("BRAND_HEADER_COLOR", "#ffffff")
BRAND_SUPPORT_EMAIL = env.str("BRAND_SUPPORT_EMAIL", default="")
BRAND_SUPPORT_URL = env.str("BRAND_SUPPORT_URL", default="")
BRAND_LEGAL_FOOTER = env.str("BRAND_LEGAL_FOOTER", default="")
# Path of the logo under the static files (used until staff upload one in the admin); empty for none.
BRAND_LOGO = env.str("BRAND_LOGO", default="brand/logo.svg")
BRAND_FAVICON = env.str("BRAND_FAVICON", default="favicon.svg")
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("es", "Español")]
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_SECURE = not DEBUG
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"

# --- Sandbox (manage.py sandbox): its memory across restarts ---
# The file where the simulators keep the tokens they issued and the balances; empty keeps them in memory only.
SANDBOX_STATE_FILE = env.str("SANDBOX_STATE_FILE", default=str(LOCAL_DIR / "sandbox-state.json"))
