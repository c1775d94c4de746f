"""The web process's entry point (``gunicorn clientarea.wsgi``): the WSGI ``application``.

The project is served through WSGI only: this module also marks the process as the web process, which gives
its database connections the web statement timeout. What it loaded (Django, the apps, the settings) lives as
long as the process, so it is frozen out of the garbage collector: a full collection then walks only what
requests created, instead of taking tens of milliseconds of some request to walk everything.
"""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientarea.settings")

application = get_wsgi_application()

from clientarea.db import mark_web_process  # noqa: E402  (after Django is set up)

mark_web_process()
gc.freeze()
