"""gunicorn settings for the web process: `gunicorn -c deploy/gunicorn.conf.py clientarea.wsgi`.

Every value can be overridden from the environment (GUNICORN_BIND, WEB_CONCURRENCY, GUNICORN_TIMEOUT).
"""

import multiprocessing
import os

# Behind the reverse proxy on the same machine (deploy/nginx/clientarea.conf proxies to this address).
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", str(min(2 * multiprocessing.cpu_count() + 1, 9))))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# A request never waits on a peer for long (every outgoing call has its own, shorter, deadline).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then, so a slow leak never grows for weeks.
max_requests = 2000
max_requests_jitter = 200
# Load the application in each worker (database connections must not be shared across forks).
preload_app = False
# Logs go to stderr as JSON lines (clientarea/logs.py). No access log: the cTrader callback's query string
# carries a one-time code, and the proxy logs requests anyway (without query strings, see the nginx example).
accesslog = None
errorlog = "-"
# The proxy sets X-Forwarded-Proto; trust it only from the proxy on this machine.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
