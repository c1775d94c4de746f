"""Settings for the test suite: the application's settings with what only tests may change.

pytest uses this module (pyproject.toml, ``DJANGO_SETTINGS_MODULE``); everything else is read from the
environment exactly as in ``clientarea.settings``.
"""

from __future__ import annotations

from clientarea.settings import *  # noqa: F403  (the whole configuration, then the test overrides)

# Hashing with a real work factor is the slowest part of creating users; the suite creates hundreds.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
