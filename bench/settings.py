"""Settings for the benchmark's server: the project's, plus the floor view's URL."""

from clientarea.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
