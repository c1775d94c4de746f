"""The link's database work: it does not grow with the accounts, and the folded reads keep every check."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent, Ctid, TradingAccount
from tests.factories import CtidFactory
from tests.helpers.ctrader import make_trader
from tests.helpers.tradingview import (
    REDIRECT_URI,
    STATE,
    exchange,
    link,
    make_account,
    open_consent,
    redirect_query,
)
from tradingview.models import Grant, OAuthClient
from tradingview.services.clients import oauth_client_create


def _queries_per_step(adapter, tv_client, jurisdiction, jurisdiction_disabled, *, accounts: int, base: int):
    trader = make_trader(f"trader{accounts}", verified=True)
    ctid = CtidFactory(user_id=base, trader=trader)
    eligible = [
        make_account(ctid, base + i, live=i % 2 == 0, jurisdiction=jurisdiction, is_tradingview=i % 3 == 0)
        for i in range(1, accounts + 1)
    ]
    # Accounts the page explains instead of offering: gone, a broker entity not enabled, a cTID to reconnect.
    for i in range(accounts // 10):
        make_account(ctid, base + 10_000 + i, live=True, jurisdiction=jurisdiction, status="gone")
        make_account(ctid, base + 20_000 + i, live=False, jurisdiction=jurisdiction_disabled)
    broken = CtidFactory(user_id=base + 50_000, trader=trader, state=Ctid.State.NEEDS_RECONNECT)
    make_account(broken, base + 60_000, live=True, jurisdiction=jurisdiction)

    browser = Client()
    browser.force_login(trader.user)
    counts: dict[str, int] = {}
    browser.get("/")  # the first request of a session records when it was last seen (once a minute)
    with CaptureQueriesContext(connection) as ctx:
        nonce = open_consent(browser, tv_client)
    counts["authorize"] = len(ctx.captured_queries)
    with CaptureQueriesContext(connection) as ctx:
        response = browser.post(
            "/tradingview/oauth/authorize",
            {"consent": nonce, "action": "allow", "accounts": [a.pk for a in eligible]},
        )
    counts["consent"] = len(ctx.captured_queries)
    query = redirect_query(response)
    assert query["state"] == [STATE]
    with CaptureQueriesContext(connection) as ctx:
        token = exchange(tv_client, query["code"][0])
    counts["token"] = len(ctx.captured_queries)
    assert token.status_code == 200, token.content

    grant = Grant.objects.get(trader=trader)
    assert grant.state == Grant.State.ACTIVE
    assert grant.accounts.count() == accounts
    assert adapter.sim.calls[-1].json["ctidTraderAccountIds"] == sorted(
        a.ctid_trader_account_id for a in eligible
    )
    return counts


def test_queries_per_link_do_not_grow_with_accounts(adapter, tv_client, jurisdiction, jurisdiction_disabled):
    few = _queries_per_step(
        adapter, tv_client, jurisdiction, jurisdiction_disabled, accounts=10, base=700_000_000
    )
    many = _queries_per_step(
        adapter, tv_client, jurisdiction, jurisdiction_disabled, accounts=200, base=800_000_000
    )
    assert TradingAccount.objects.count() == 10 + 2 + 1 + 200 + 40 + 1
    assert few == many


def test_exchange_checks_the_client_before_the_code(adapter, tv_client, browser_client, accounts):
    code = link(browser_client, tv_client, [accounts[0].pk])
    other, other_secret = oauth_client_create(name="Other TradingView", redirect_uris=[REDIRECT_URI])

    # A wrong secret with a valid code: invalid_client, recorded, and the code stays usable.
    wrong = exchange(tv_client, code, client_secret="not-the-secret")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert AuditEvent.objects.filter(
        action="client_auth", outcome="invalid_client", detail__client_id=tv_client.client.client_id
    ).exists()
    # An unknown client, and a missing code with a bad secret, are invalid_client too.
    assert exchange(tv_client, code, client_id="tv-nobody").json()["error"] == "invalid_client"
    assert exchange(tv_client, "", client_secret="not-the-secret").json()["error"] == "invalid_client"
    # Another (authenticated) client presenting this code: the code is not valid for it.
    stolen = exchange(tv_client, code, client_id=other.client_id, client_secret=other_secret)
    assert (stolen.status_code, stolen.json()["error"]) == (400, "invalid_grant")
    # A deactivated client cannot exchange its own code.
    OAuthClient.objects.filter(pk=tv_client.client.pk).update(is_active=False)
    assert exchange(tv_client, code).json()["error"] == "invalid_client"
    OAuthClient.objects.filter(pk=tv_client.client.pk).update(is_active=True)

    assert exchange(tv_client, code).status_code == 200
    assert Grant.objects.get().state == Grant.State.ACTIVE


# What each step of a link costs the database at most, the session and the signed-in trader included:
# the authorize page reads the client with the cTIDs and their accounts; the consent re-checks the chosen accounts,
# the client and the form's earlier submissions in one query and stores grant, accounts, code and audit
# record in one statement; the token exchange takes the code and reads its grant in one statement.
STATEMENTS_PER_STEP = {"authorize": 3, "consent": 4, "token": 1}


def test_statements_per_step_are_pinned(adapter, tv_client, jurisdiction, jurisdiction_disabled):
    for accounts, base in ((3, 600_000_000), (200, 650_000_000)):
        counts = _queries_per_step(
            adapter, tv_client, jurisdiction, jurisdiction_disabled, accounts=accounts, base=base
        )
        assert counts == STATEMENTS_PER_STEP, counts
    assert sum(STATEMENTS_PER_STEP.values()) <= 12


def _audit_actions(trader) -> list[tuple[str, str]]:
    return list(AuditEvent.objects.filter(trader=trader).order_by("pk").values_list("action", "outcome"))


def test_the_one_statement_writes_keep_every_record(adapter, tv_client, browser_client, trader, accounts):
    code = link(browser_client, tv_client, [a.pk for a in accounts])
    grant = Grant.objects.get()
    assert grant.state == Grant.State.ACTIVE
    assert grant.consent_key
    assert grant.adapter_token == adapter.sim.active_tokens()[0]
    assert sorted(grant.accounts.values_list("pk", flat=True)) == sorted(a.pk for a in accounts)
    assert grant.broker_names == ["BESTBROKER"]
    assert grant.is_verified is True
    [issued] = grant.codes.all()
    assert (issued.redirect_uri, issued.used_at, issued.superseded) == (REDIRECT_URI, None, False)
    created = AuditEvent.objects.get(action="grant_created")
    assert created.actor == trader.user
    assert created.detail["grant"] == grant.pk
    assert created.detail["client_id"] == tv_client.client.client_id
    assert created.detail["account_ids"] == sorted(a.ctid_trader_account_id for a in accounts)

    answer = exchange(tv_client, code).json()
    assert answer["access_token"] == grant.adapter_token
    grant.refresh_from_db()
    assert grant.refresh_token_hash is not None
    issued.refresh_from_db()
    assert issued.used_at is not None
    exchanged = AuditEvent.objects.get(action="code_exchanged")
    assert exchanged.detail == {"client_id": tv_client.client.client_id, "grant": grant.pk}
    assert exchanged.trader_id == trader.pk
    assert _audit_actions(trader) == [("grant_created", "ok"), ("code_exchanged", "ok")]


def test_what_changed_since_the_page_is_checked_again(
    adapter, tv_client, browser_client, trader, ctid, accounts, jurisdiction
):
    from tests.helpers.tradingview import open_consent
    from tradingview.models import RedirectUri

    # An account gone since the page was shown: refused, the adapter never asked.
    nonce = open_consent(browser_client, tv_client)
    TradingAccount.objects.filter(pk=accounts[1].pk).update(status="gone")
    refused = browser_client.post(
        "/tradingview/oauth/authorize", {"consent": nonce, "action": "allow", "accounts": [accounts[1].pk]}
    )
    assert refused.status_code == 400
    assert b"You no longer share this account with us." in refused.content
    TradingAccount.objects.filter(pk=accounts[1].pk).update(status="active")

    # The broker entity closed to TradingView since the page.
    nonce = open_consent(browser_client, tv_client)
    type(jurisdiction).objects.filter(pk=jurisdiction.pk).update(tradingview_enabled=False)
    refused = browser_client.post(
        "/tradingview/oauth/authorize", {"consent": nonce, "action": "allow", "accounts": [accounts[0].pk]}
    )
    assert refused.status_code == 400
    type(jurisdiction).objects.filter(pk=jurisdiction.pk).update(tradingview_enabled=True)

    # The cTID needs reconnecting since the page.
    nonce = open_consent(browser_client, tv_client)
    Ctid.objects.filter(pk=ctid.pk).update(state=Ctid.State.NEEDS_RECONNECT)
    refused = browser_client.post(
        "/tradingview/oauth/authorize", {"consent": nonce, "action": "allow", "accounts": [accounts[0].pk]}
    )
    assert refused.status_code == 400
    Ctid.objects.filter(pk=ctid.pk).update(state=Ctid.State.CONNECTED)

    # The redirect URI unregistered, then the client deactivated, since the page: the request's error page.
    nonce = open_consent(browser_client, tv_client)
    RedirectUri.objects.filter(client=tv_client.client).update(uri="https://elsewhere.example/cb")
    gone = browser_client.post(
        "/tradingview/oauth/authorize", {"consent": nonce, "action": "allow", "accounts": [accounts[0].pk]}
    )
    assert gone.status_code == 400
    assert b"not registered" in gone.content
    RedirectUri.objects.filter(client=tv_client.client).update(uri=REDIRECT_URI)
    nonce = open_consent(browser_client, tv_client)
    OAuthClient.objects.filter(pk=tv_client.client.pk).update(is_active=False)
    gone = browser_client.post(
        "/tradingview/oauth/authorize", {"consent": nonce, "action": "allow", "accounts": [accounts[0].pk]}
    )
    assert gone.status_code == 400
    assert b"not known to us" in gone.content

    assert adapter.sim.calls_to("/generate/token") == []
    assert not Grant.objects.exists()


def test_simultaneous_submissions_of_one_form_ask_the_adapter_once(
    adapter, tv_client, trader, accounts, transactional_db
):
    adapter.sim.latency = 0.25
    answers = _submit_one_form_in_threads(tv_client, trader, accounts, count=3)
    assert sorted(answers) == [302, 302, 302]
    assert len(adapter.sim.calls_to("/generate/token")) == 1
    assert Grant.objects.count() == 1
    assert Grant.objects.get().state == Grant.State.ACTIVE
    assert AuditEvent.objects.filter(action="grant_created").count() == 1


def test_a_repeat_that_checked_before_the_grant_was_stored_waits_for_it(
    adapter, tv_client, browser_client, trader, accounts, monkeypatch
):
    from tradingview import selectors
    from tradingview.services import consent

    nonce = open_consent(browser_client, tv_client)
    form = {"consent": nonce, "action": "allow", "accounts": [accounts[0].pk]}
    first = browser_client.post("/tradingview/oauth/authorize", form)
    assert first.status_code == 302

    # The repeat's re-check ran while the first submission was still talking to the adapter: it saw no grant.
    def checked_too_early(**kwargs):
        found = selectors.consent_recheck(**kwargs)
        return selectors.ConsentRecheck(found.brokers, found.client_registered, None)

    monkeypatch.setattr(consent, "consent_recheck", checked_too_early)
    repeat = browser_client.post("/tradingview/oauth/authorize", form)
    assert repeat.status_code == 302
    # The same grant with a fresh code; the adapter was asked once and no surplus token was made.
    assert redirect_query(repeat)["code"] != redirect_query(first)["code"]
    assert len(adapter.sim.calls_to("/generate/token")) == 1
    assert Grant.objects.count() == 1
    assert not AuditEvent.objects.filter(action="grant_revoke").exists()


def test_on_a_database_without_the_one_statement_writes_the_orm_stores_the_same(
    adapter, tv_client, browser_client, trader, accounts, monkeypatch
):
    from tests.helpers.tradingview import open_consent
    from tradingview.services import statements

    monkeypatch.setattr(statements, "available", lambda: False)
    test_the_one_statement_writes_keep_every_record(adapter, tv_client, browser_client, trader, accounts)
    # A re-submitted form: the same grant, a fresh code, no second adapter token.
    nonce = open_consent(browser_client, tv_client)
    for _ in range(2):
        response = browser_client.post(
            "/tradingview/oauth/authorize",
            {"consent": nonce, "action": "allow", "accounts": [accounts[0].pk]},
        )
        assert response.status_code == 302
    assert Grant.objects.count() == 2
    assert len(adapter.sim.calls_to("/generate/token")) == 2


def _submit_one_form_in_threads(tv_client, trader, accounts, *, count, between=None) -> list[int]:
    """The trader opens the consent page once and submits its form ``count`` times, each in a thread of its own
    (``between`` runs once the first has started and before the others do); the answers' status codes."""
    import threading

    from django.db import connections

    browser = Client()
    browser.force_login(trader.user)
    nonce = open_consent(browser, tv_client)
    answers: list[int] = []

    def submit() -> None:
        try:
            response = browser.post(
                "/tradingview/oauth/authorize",
                {"consent": nonce, "action": "allow", "accounts": [a.pk for a in accounts]},
            )
            answers.append(response.status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit) for _ in range(count)]
    threads[0].start()
    if between is not None:
        between()
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_without_a_reachable_cache_one_form_still_asks_the_adapter_once(
    adapter, tv_client, trader, accounts, transactional_db, settings, closed_port_url
):
    # The claim lives in the database the consent writes to anyway: a cache that does not answer changes
    # nothing, and no submission waits for it.
    port = closed_port_url.split(":")[2].split("/")[0]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    adapter.sim.latency = 0.25
    answers = _submit_one_form_in_threads(tv_client, trader, accounts, count=2)
    assert sorted(answers) == [302, 302]
    assert len(adapter.sim.calls_to("/generate/token")) == 1
    assert Grant.objects.get().state == Grant.State.ACTIVE
    assert AuditEvent.objects.filter(action="grant_created").count() == 1
    assert not AuditEvent.objects.filter(action="grant_revoke").exists()


def test_a_lost_claim_still_makes_one_grant_and_revokes_the_surplus_token(
    adapter, tv_client, trader, accounts, transactional_db
):
    import time

    from tradingview.models import ConsentClaim

    adapter.sim.latency = 0.3

    def claim_lost() -> None:
        # The first submission holds the claim while it waits for the adapter; then the claims are lost, as
        # a crash empties the unlogged table.
        deadline = time.monotonic() + 5
        while not ConsentClaim.objects.exists():
            assert time.monotonic() < deadline, "the first submission never claimed the form"
            time.sleep(0.01)
        ConsentClaim.objects.all().delete()

    answers = _submit_one_form_in_threads(tv_client, trader, accounts, count=2, between=claim_lost)
    assert sorted(answers) == [302, 302]
    # Both asked the adapter; one grant is linked, the other token is logged out at once.
    assert len(adapter.sim.calls_to("/generate/token")) == 2
    [linked] = Grant.objects.filter(state=Grant.State.ACTIVE)
    [surplus] = Grant.objects.exclude(pk=linked.pk)
    assert surplus.consent_key is None
    assert surplus.state == Grant.State.REVOKED
    assert adapter.sim.is_revoked(surplus.adapter_token)
    assert not adapter.sim.is_revoked(linked.adapter_token)
    assert AuditEvent.objects.filter(action="grant_created").count() == 1
    assert AuditEvent.objects.filter(
        action="grant_revoke", outcome="surplus", detail__grant=surplus.pk
    ).exists()


def _prepared_statements() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE from_sql IS FALSE")
        return {row[0] for row in cursor.fetchall()}


def test_the_links_own_statements_are_prepared_once_per_connection(
    adapter, tv_client, browser_client, trader, accounts
):
    # The consent page's reads, the consent's re-check and store, the code exchange: parsed and planned by
    # PostgreSQL on the first link of the connection, only executed on the next ones. (Any signed-in page
    # prepares the session's and the user's reads, counted apart.)
    assert browser_client.get("/tradingview/").status_code == 200
    before = _prepared_statements()
    assert exchange(tv_client, link(browser_client, tv_client, [accounts[0].pk])).status_code == 200
    first = _prepared_statements() - before
    assert len(first) == 4, first
    assert any(s.startswith("WITH g AS (INSERT INTO") for s in first)
    assert any(s.startswith("WITH t AS (UPDATE") for s in first)
    # A second link, with more accounts chosen, prepares nothing new: the statements' text does not change.
    assert exchange(tv_client, link(browser_client, tv_client, [a.pk for a in accounts])).status_code == 200
    assert _prepared_statements() - before == first


def _grant_values(tv_client, trader, accounts, now):
    """A new active grant's fields, with a non-ASCII broker name for the JSON."""
    from datetime import timedelta

    return {
        "client_id": tv_client.client.pk,
        "trader_id": trader.pk,
        "ctid_id": accounts[0].ctid_id,
        "broker_names": ["BESTBROKER", "Ünïcode"],
        "is_verified": True,
        "scope": "",
        "consent_key": "k" * 32,
        "state": Grant.State.ACTIVE,
        "adapter_token": "adapter-token",
        "adapter_token_issued_at": now,
        "adapter_token_expires_at": now + timedelta(days=30),
    }


def _assert_same_parameters(fields, sent, expected):
    """``sent`` is what ``expected`` holds, field by field: the adapter token decrypting alike (it is encrypted
    afresh each time), the save times within seconds, JSON by its wrapped value, the rest by type and value."""
    from clientarea.crypto import decrypt

    assert len(sent) == len(expected)
    for field, a, b in zip(fields, sent, expected, strict=True):
        if field.name == "adapter_token":
            assert decrypt(a) == decrypt(b) == "adapter-token"
        elif field.name in ("created_at", "updated_at"):
            assert abs((a - b).total_seconds()) < 5
        elif hasattr(a, "obj"):
            assert (type(a), a.obj) == (type(b), b.obj)
        else:
            assert (type(a), a) == (type(b), b), field.name


def test_the_statements_send_each_value_as_its_field_prepares_it(adapter, tv_client, trader, accounts):
    """The link's writes skip the preparation of plain values: what they send is what the fields prepare."""

    from django.db import connection as db
    from django.utils import timezone

    from accounts.services.audit import audit_event_new
    from tradingview.models import AuthorizationCode
    from tradingview.services import statements

    now = timezone.now()
    grant = Grant(**_grant_values(tv_client, trader, accounts, now), revoke_reason="")
    code = AuthorizationCode(
        code_hash="h" * 64, client_id=tv_client.client.pk, redirect_uri=REDIRECT_URI, expires_at=now
    )
    audit = audit_event_new(
        category="tradingview", action="grant_created", outcome="ok", trader=trader, detail={"a": [1, "ü"]}
    )
    for obj in (grant, code, audit):
        _columns, _values, sent = statements._row(obj)
        fields = [f for f in type(obj)._meta.local_concrete_fields if not f.primary_key]
        prepared = [f.get_db_prep_save(f.pre_save(obj, add=True), db) for f in fields]
        _assert_same_parameters(fields, sent, prepared)


def test_a_row_given_by_its_values_is_the_row_of_the_instance_made_with_them(trader, accounts, tv_client):
    """The consent stores its grant, code and audit record from their fields' values: every other field at its
    default and the save times now, the same parameters as the instance made with those values would give."""

    from django.utils import timezone

    from accounts.models import AuditEvent
    from accounts.services.audit import audit_event_values
    from tradingview.models import AuthorizationCode
    from tradingview.services import statements

    now = timezone.now()
    grant = _grant_values(tv_client, trader, accounts, now)
    code = {
        "code_hash": "h" * 64,
        "client_id": tv_client.client.pk,
        "redirect_uri": REDIRECT_URI,
        "expires_at": now,
    }
    audit = audit_event_values(
        category="tradingview",
        action="grant_created",
        outcome="ok",
        trader=trader,
        actor=trader.user,
        detail={"a": 1},
    )
    for model, values in ((Grant, grant), (AuthorizationCode, code), (AuditEvent, audit)):
        columns, placeholders, sent = statements._row_values(model, values)
        expected_columns, expected_placeholders, expected = statements._row(model(**values))
        assert (columns, placeholders) == (expected_columns, expected_placeholders)
        fields = [f for f in model._meta.local_concrete_fields if not f.primary_key]
        _assert_same_parameters(fields, sent, expected)
    # A name that is no field is refused rather than dropped.
    with pytest.raises(ValueError, match="not fields of Grant"):
        statements._row_values(Grant, {**grant, "adapter_tokn": "x"})
