"""The API docs: Swagger UI from our own static files, staff-only or off by a setting; web processes put a
statement timeout on their PostgreSQL connections."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client


def test_swagger_ui_is_served_from_our_static_files_never_a_cdn(db, settings):
    settings.API_DOCS = "public"
    page = Client().get("/api/v1/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, html
    assert all(s.startswith("/") for s in sources), sources
    assert any("/static/drf_spectacular_sidecar/swagger-ui-dist/" in s for s in sources)
    assert "<script>" not in html
    assert "<style>" not in html
    script = Client().get("/api/v1/docs/", {"script": ""})
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.content.decode()


def test_the_docs_are_staff_only_or_off_by_a_setting(db, settings, trader_client, staff_client):
    settings.API_DOCS = "staff"
    for path in ("/api/v1/docs/", "/api/v1/schema/"):
        assert Client().get(path).status_code in (401, 403)
        assert trader_client.get(path).status_code == 403
        assert staff_client.get(path).status_code == 200
    settings.API_DOCS = "off"
    for path in ("/api/v1/docs/", "/api/v1/schema/"):
        assert staff_client.get(path).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_web_processes_put_a_statement_timeout_on_postgresql(monkeypatch, settings):
    import clientarea.db

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    settings.DATABASE_WEB_STATEMENT_TIMEOUT_MS = 1500
    monkeypatch.setattr(clientarea.db, "_web_process", True)
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "1500ms"
    monkeypatch.setattr(clientarea.db, "_web_process", False)
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] != "1500ms"
