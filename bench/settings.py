"""Settings for the benchmark's server: the project's, plus the floor view's URL."""

from clientarea.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
# Measure the production code path (no query log, no template debugging); secrets, static files and
# cookies keep the development defaults the import above chose, so the server runs over plain HTTP.
DEBUG = False
