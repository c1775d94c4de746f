"""Settings for clientarea, read from the environment (see .env.example).

Development (DEBUG=1) gets generated, persisted defaults for every secret so a fresh clone runs with no
configuration. With DEBUG off, every missing secret stops start-up with a message that names it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_DIR = BASE_DIR / ".local"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SANDBOX = env.bool("SANDBOX", default=False)


def _local_default(name: str, make: Callable[[], str]) -> str:
    """A development-only secret, generated once and kept in .local/ so restarts keep working."""
    LOCAL_DIR.mkdir(exist_ok=True)
    path = LOCAL_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _secret(
    name: str, *, dev_default: Callable[[], str] | None = None, sandbox_default: str | None = None
) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if SANDBOX and sandbox_default is not None:
        return sandbox_default
    if DEBUG and dev_default is not None:
        return dev_default()
    raise ImproperlyConfigured(
        f"The environment variable {name} is required when DEBUG is off (see .env.example)."
    )


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


SECRET_KEY = _secret(
    "SECRET_KEY", dev_default=lambda: _local_default("secret_key", lambda: secrets.token_urlsafe(50))
)
# Comma-separated Fernet keys, newest first: the first encrypts, all decrypt (MultiFernet).
TOKEN_ENCRYPTION_KEYS = [
    k.strip()
    for k in _secret(
        "TOKEN_ENCRYPTION_KEYS", dev_default=lambda: _local_default("token_encryption_keys", _fernet_key)
    ).split(",")
    if k.strip()
]

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
]
if SANDBOX:
    INSTALLED_APPS.append("sandbox")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "clientarea.urls"
WSGI_APPLICATION = "clientarea.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "clientarea.context_processors.site",
            ],
        },
    },
]

# DATABASE_URL unset: the embedded SQLite file.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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

# Failed sign-ins are throttled per account and, separately, per IP address.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_SENSITIVE_PARAMETERS = ["password", "password1", "password2", "new_password1", "new_password2"]

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

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="clientarea@localhost")

# --- Security (production) ---
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

# --- Django REST framework ---
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
}

# --- Redis and Celery ---
# REDIS_URL unset: embedded mode, tasks run in-process and no broker is needed.
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 90
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {}
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    # Every signed-in request reads its session: from the shared cache, written through to the database.
    # Only with Redis: a per-process cache would keep serving a session another process ended (sign-out).
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# --- The four peers ---
SANDBOX_HTTP = env.str("SANDBOX_HTTP", default="http://127.0.0.1:8001").rstrip("/")
SANDBOX_WS_LIVE = env.str("SANDBOX_WS_LIVE", default="ws://127.0.0.1:8037")
SANDBOX_WS_DEMO = env.str("SANDBOX_WS_DEMO", default="ws://127.0.0.1:8036")


def _peer_url(name: str, production: str, sandbox: str) -> str:
    return env.str(name, default=sandbox if SANDBOX else production)


CTRADER_CLIENT_ID = _secret("CTRADER_CLIENT_ID", sandbox_default="sandbox-client", dev_default=lambda: "")
CTRADER_CLIENT_SECRET = _secret(
    "CTRADER_CLIENT_SECRET", sandbox_default="sandbox-secret", dev_default=lambda: ""
)
CTRADER_REDIRECT_URI = env.str("CTRADER_REDIRECT_URI", default=f"{SITE_URL}/ctrader/callback/")
CTRADER_AUTH_URL = _peer_url(
    "CTRADER_AUTH_URL",
    "https://id.ctrader.com/my/settings/openapi/grantingaccess/",
    f"{SANDBOX_HTTP}/ctrader-id/grantingaccess/",
)
CTRADER_TOKEN_URL = _peer_url(
    "CTRADER_TOKEN_URL", "https://openapi.ctrader.com/apps/token", f"{SANDBOX_HTTP}/ctrader-id/apps/token"
)
CTRADER_SCOPE = env.str("CTRADER_SCOPE", default="accounts")
CTRADER_OPENAPI_LIVE_URL = _peer_url(
    "CTRADER_OPENAPI_LIVE_URL", "wss://live.ctraderapi.com:5036", SANDBOX_WS_LIVE
)
CTRADER_OPENAPI_DEMO_URL = _peer_url(
    "CTRADER_OPENAPI_DEMO_URL", "wss://demo.ctraderapi.com:5036", SANDBOX_WS_DEMO
)

TRADINGVIEW_ADAPTER_URL = _peer_url("TRADINGVIEW_ADAPTER_URL", "", f"{SANDBOX_HTTP}/adapter").rstrip("/")
TRADINGVIEW_ADAPTER_TOKEN = _secret(
    "TRADINGVIEW_ADAPTER_TOKEN", sandbox_default="sandbox-adapter-bearer", dev_default=lambda: ""
)
if not DEBUG and not TRADINGVIEW_ADAPTER_URL:
    raise ImproperlyConfigured(
        "The environment variable TRADINGVIEW_ADAPTER_URL is required when DEBUG is off."
    )

# Outgoing HTTP (clientarea/http.py): connect and read timeouts in seconds, bounded connect retries.
HTTP_CONNECT_TIMEOUT = env.float("HTTP_CONNECT_TIMEOUT", default=5.0)
HTTP_READ_TIMEOUT = env.float("HTTP_READ_TIMEOUT", default=15.0)
HTTP_CONNECT_RETRIES = env.int("HTTP_CONNECT_RETRIES", default=2)

# --- Logging: structured JSON to stderr; no secret is ever passed to a logger. ---
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        # urllib3 logs full request URLs at DEBUG, and token URLs carry secrets in the query string.
        "urllib3": {"level": "WARNING"},
    },
}

# --- foundation ---
# A bad encryption key must stop start-up, not the first request that touches a token.
try:
    from cryptography.fernet import Fernet as _Fernet

    for _key in TOKEN_ENCRYPTION_KEYS:
        _Fernet(_key.encode())
except ValueError:
    raise ImproperlyConfigured(
        "TOKEN_ENCRYPTION_KEYS holds a value that is not a Fernet key (32 url-safe base64-encoded bytes)."
    ) from None

# --- cTID connect, token refresh and account sync ---
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
# How long a caller that finds the refresh already in flight waits for its result.
TOKEN_REFRESH_COALESCE_WAIT_SECONDS = env.float("TOKEN_REFRESH_COALESCE_WAIT_SECONDS", default=30.0)
CTID_CONNECT_STATE_TTL_SECONDS = env.int("CTID_CONNECT_STATE_TTL_SECONDS", default=600)
ACCOUNT_SYNC_INTERVAL_SECONDS = env.int("ACCOUNT_SYNC_INTERVAL_SECONDS", default=6 * 3600)
OPENAPI_REQUEST_TIMEOUT = env.float("OPENAPI_REQUEST_TIMEOUT", default=10.0)
CELERY_BEAT_SCHEDULE.update(
    {
        "sweep-due-ctid-tokens": {
            "task": "accounts.tasks.sweep_due_tokens",
            "schedule": float(TOKEN_SWEEP_INTERVAL_SECONDS),
            "options": {"expires": float(TOKEN_SWEEP_INTERVAL_SECONDS)},
        },
        "sync-all-ctid-accounts": {
            "task": "accounts.tasks.sync_all_accounts",
            "schedule": float(ACCOUNT_SYNC_INTERVAL_SECONDS),
            "options": {"expires": float(ACCOUNT_SYNC_INTERVAL_SECONDS)},
        },
    }
)
# Retries of transient task failures: exponential from the base, with jitter, capped, at most this many.
TASK_RETRY_BASE_SECONDS = env.float("TASK_RETRY_BASE_SECONDS", default=30.0)
TASK_RETRY_CAP_SECONDS = env.float("TASK_RETRY_CAP_SECONDS", default=3600.0)
TASK_MAX_RETRIES = env.int("TASK_MAX_RETRIES", default=8)
# websockets logs every frame at DEBUG, and Open API frames carry access tokens and the client secret.
LOGGING["loggers"]["websockets"] = {"level": "INFO"}  # type: ignore[index]

# --- TradingView ---
# expires_in handed to TradingView: it refreshes before this runs out (TradingView recommends 15-30 minutes);
# never above 2,147,483 s (TradingView's 32-bit millisecond ceiling) nor the adapter token's remaining life.
TRADINGVIEW_TOKEN_EXPIRES_IN = min(env.int("TRADINGVIEW_TOKEN_EXPIRES_IN", default=1800), 2_147_483)
# How long a superseded adapter token stays valid after a refresh, so TradingView can switch over.
TRADINGVIEW_REFRESH_GRACE_SECONDS = env.int("TRADINGVIEW_REFRESH_GRACE_SECONDS", default=600)
TRADINGVIEW_CODE_TTL_SECONDS = min(env.int("TRADINGVIEW_CODE_TTL_SECONDS", default=60), 60)
TRADINGVIEW_ADAPTER_TOKEN_LIFETIME_DAYS = env.int("TRADINGVIEW_ADAPTER_TOKEN_LIFETIME_DAYS", default=30)
# Only accounts flagged "cTrader/TradingView" may be linked (Spotware allows either policy).
TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS = env.bool("TRADINGVIEW_ONLY_TRADINGVIEW_ACCOUNTS", default=False)
# First retry of a failed /logout; later retries back off exponentially (with jitter, capped at 15 minutes).
TRADINGVIEW_LOGOUT_RETRY_SECONDS = env.float("TRADINGVIEW_LOGOUT_RETRY_SECONDS", default=10.0)
CELERY_BEAT_SCHEDULE["tradingview-revocation-sweep"] = {
    "task": "tradingview.tasks.grant_revocation_sweep",
    "schedule": env.float("TRADINGVIEW_REVOCATION_SWEEP_SECONDS", default=60.0),
}

# --- Open API gateway ---
# manage.py openapi_gateway: heartbeat interval, per-connection request limit, request timeout, reconnect
# backoff cap and how often it looks for new accounts and tokens in the database.
OPENAPI_HEARTBEAT_SECONDS = env.float("OPENAPI_HEARTBEAT_SECONDS", default=10.0)
OPENAPI_MAX_REQUESTS_PER_SECOND = env.int("OPENAPI_MAX_REQUESTS_PER_SECOND", default=50)
OPENAPI_RECONNECT_MAX_SECONDS = env.float("OPENAPI_RECONNECT_MAX_SECONDS", default=60.0)
OPENAPI_DB_POLL_SECONDS = env.float("OPENAPI_DB_POLL_SECONDS", default=5.0)

# --- Operations: health probes, request ids, log safety, the run command ---
INSTALLED_APPS.append("clientarea")
MIDDLEWARE.insert(0, "clientarea.request_id.RequestIdMiddleware")
MIDDLEWARE.insert(1, "clientarea.health.HealthCheckMiddleware")
LOGGING["filters"] = {"request_id": {"()": "clientarea.request_id.RequestIdFilter"}}
LOGGING["handlers"]["console"]["filters"] = ["request_id"]  # type: ignore[index]
LOGGING["formatters"]["json"]["()"] = "clientarea.logs.JsonFormatter"  # type: ignore[index]
LOGGING["formatters"]["plain"] = {  # type: ignore[index]
    "()": "clientarea.logs.PlainFormatter",
    "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
}
# Seconds each readiness check may take (Redis ping, Celery worker ping).
HEALTH_CHECK_TIMEOUT = env.float("HEALTH_CHECK_TIMEOUT", default=1.0)
# Set where an Open API gateway must be running: /readyz then fails when its heartbeat goes stale.
HEALTH_GATEWAY_EXPECTED = env.bool("HEALTH_GATEWAY_EXPECTED", default=False)
HEALTH_GATEWAY_STALE_SECONDS = env.int("HEALTH_GATEWAY_STALE_SECONDS", default=60)
HEALTH_GATEWAY_ENVIRONMENTS = env.list("HEALTH_GATEWAY_ENVIRONMENTS", default=["live", "demo"])
# The periodic loop of the embedded mode (manage.py run_periodic): how often it looks for due tasks.
PERIODIC_TICK_SECONDS = env.float("PERIODIC_TICK_SECONDS", default=5.0)
# Celery workers keep the JSON logging above instead of installing their own plain-text handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Branding (the broker's name, colours, support contacts; staff can override each in the admin) ---
INSTALLED_APPS.append("branding")
TEMPLATES[0]["OPTIONS"]["context_processors"].append("branding.context_processors.brand")  # type: ignore[index]
_COLOR = r"^#[0-9a-fA-F]{6}$"


def _brand_color(name: str, default: str) -> str:
    import re

    value = env.str(name, default=default)
    if not re.match(_COLOR, value):
        raise ImproperlyConfigured(f"{name} must be a colour written as #rrggbb, not {value!r}.")
    return value


BRAND_NAME = env.str("BRAND_NAME", default="Client area")
BRAND_PRIMARY_COLOR = _brand_color("BRAND_PRIMARY_COLOR", "#0b5cad")
BRAND_HEADER_COLOR = _brand_color("BRAND_HEADER_COLOR", "#ffffff")
BRAND_SUPPORT_EMAIL = env.str("BRAND_SUPPORT_EMAIL", default="")
BRAND_SUPPORT_URL = env.str("BRAND_SUPPORT_URL", default="")
BRAND_LEGAL_FOOTER = env.str("BRAND_LEGAL_FOOTER", default="")
# Path of the logo under the static files (used until staff upload one in the admin); empty for none.
BRAND_LOGO = env.str("BRAND_LOGO", default="brand/logo.svg")
BRAND_FAVICON = env.str("BRAND_FAVICON", default="favicon.svg")

# --- Languages (Django i18n): the TradingView flow's `lang`, else the profile's, else the browser's ---
INSTALLED_APPS.append("preferences")
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("es", "Español")]
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_SECURE = not DEBUG
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware") + 1,
    "django.middleware.locale.LocaleMiddleware",
)
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
    "preferences.middleware.TraderLanguageMiddleware",
)

# --- Two-step sign-in (django-otp: authenticator app and recovery codes) ---
INSTALLED_APPS += ["django_otp", "django_otp.plugins.otp_totp", "django_otp.plugins.otp_static", "twofactor"]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
    "django_otp.middleware.OTPMiddleware",
)
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.messages.middleware.MessageMiddleware") + 1,
    "twofactor.middleware.StaffTwoFactorMiddleware",
)
# Staff reach the admin only after two-step sign-in (on by default in production).
TWO_FACTOR_REQUIRED_FOR_STAFF = env.bool("TWO_FACTOR_REQUIRED_FOR_STAFF", default=not DEBUG)
OTP_TOTP_ISSUER = None

# --- Email notifications (sent by Celery; SMTP credentials for a real mail provider) ---
INSTALLED_APPS.append("notifications")
MIDDLEWARE.insert(
    MIDDLEWARE.index("axes.middleware.AxesMiddleware"), "notifications.devices.DeviceCookieMiddleware"
)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured(
        "Set EMAIL_USE_TLS (STARTTLS, port 587) or EMAIL_USE_SSL (port 465), not both."
    )
# Seconds one SMTP conversation may take; a slow mail server delays a retry, never a page.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)

# --- Sandbox memory across restarts (manage.py sandbox) ---
# The file where the simulators keep the tokens they issued and the balances; empty keeps them in memory only.
SANDBOX_STATE_FILE = env.str("SANDBOX_STATE_FILE", default=str(LOCAL_DIR / "sandbox-state.json"))
