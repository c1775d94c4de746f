"""
WSGI config for clientarea project.

It exposes the WSGI callable as a module-level variable named ``application``.

For more information on this file, see
https://docs.djangoproject.com/en/5.2/howto/deployment/wsgi/
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientarea.settings")

application = get_wsgi_application()

from clientarea.db import mark_web_process  # noqa: E402  (after Django is set up)

mark_web_process()
