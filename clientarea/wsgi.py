"""The web process's entry point (``gunicorn clientarea.wsgi``): the WSGI ``application``.

The project is served through WSGI only: this module also marks the process as the web process, which gives
its database connections the web statement timeout.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientarea.settings")

application = get_wsgi_application()

from clientarea.db import mark_web_process  # noqa: E402  (after Django is set up)

mark_web_process()
