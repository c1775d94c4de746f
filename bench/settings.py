"""Settings for the benchmark's server: the project's, plus the floors' URLs and a CPU-per-request header."""

import os
from pathlib import Path

from clientarea.settings import *  # noqa: F403
from clientarea.settings import MIDDLEWARE, TEMPLATES

ROOT_URLCONF = "bench.urls"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
# Measure the production code path (no query log, no template debugging); secrets, static files and
# cookies keep the development defaults the import above chose, so the server runs over plain HTTP.
DEBUG = False
# Outermost: the CPU the request's thread used in the whole middleware stack and the view.
MIDDLEWARE = ["bench.middleware.thread_cpu", *MIDDLEWARE]
# BENCH_SESSIONS=redis (with REDIS_URL): sessions read from the Redis cache and written through to the
# database, to compare with the project's sessions in the database.
if os.environ.get("BENCH_SESSIONS") == "redis":
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
# BENCH_WHAT_IF=minimal-page (bench_link.py --what-if): the TradingView authorization page is the one-line form
# in bench/templates instead of the product's branded page, to measure what that page takes of the link.
if "minimal-page" in os.environ.get("BENCH_WHAT_IF", "").split(","):
    TEMPLATES = [
        {**TEMPLATES[0], "DIRS": [Path(__file__).resolve().parent / "templates", *TEMPLATES[0]["DIRS"]]}
    ]
