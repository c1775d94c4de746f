import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientarea.settings")

app = Celery("clientarea")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
