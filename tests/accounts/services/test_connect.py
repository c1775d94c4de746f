"""Connect a cTID end to end: our views, the cTrader ID simulator (consent page and token endpoint) and the
Open API simulators, all real servers on loopback."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import Client
from django.urls import reverse

from accounts.ctrader.openapi.messages import PayloadType
from accounts.models import AuditEvent, Ctid, CtidJob, CtidToken, Jurisdiction, TradingAccount
from accounts.services.tokens import TokenRefreshTransient, ctid_token_refresh
from tests.factories import TraderFactory
from tests.helpers.ctrader import CLIENT_SECRET, wait_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("jobs_run_inline")]


@pytest.fixture
def peers(ctrader_id, openapi, settings):
    settings.CTRADER_REDIRECT_URI = "http://testserver/ctrader/callback/"
    Jurisdiction.objects.create(broker_name="TEST-EU", display_name="Test EU")
    return ctrader_id, openapi


def start(client: Client) -> str:
    """Press "Connect cTrader ID": returns the consent URL we were sent to."""
    response = client.post(reverse("ctid-connect"))
    assert response.status_code == 302
    return response["Location"]


def consent(
    consent_url: str, *, user_id: int = 9100001, accounts: tuple[int, ...] | None = None, deny=False
) -> str:
    """Act as the trader on the simulated consent page; returns where cTrader ID redirects the browser."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(consent_url).query).items()}
    page = requests.get(consent_url, timeout=5)
    assert page.status_code == 200
    assert "Grant access" in page.text
    form = [(k, query.get(k, "")) for k in ("client_id", "redirect_uri", "scope", "state", "product")]
    form += [("user_id", str(user_id)), ("decision", "deny" if deny else "accept")]
    chosen = (
        accounts
        if accounts is not None
        else {9100001: (61000001, 61000002, 61000003), 9100002: (61000011,)}[user_id]
    )
    form += [("account", str(a)) for a in chosen]
    action = consent_url.split("?")[0]
    answer = requests.post(action, data=form, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    return answer.headers["Location"]


def callback(client: Client, redirect: str):
    parts = urlsplit(redirect)
    assert parts.path == reverse("ctid-callback")
    return client.get(parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()})


def test_the_consent_url_carries_the_configured_parameters(peers, trader_client, settings):
    url = start(trader_client)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert url.startswith(settings.CTRADER_AUTH_URL)
    assert query["client_id"] == [settings.CTRADER_CLIENT_ID]
    assert query["redirect_uri"] == ["http://testserver/ctrader/callback/"]
    assert query["scope"] == ["accounts"]
    assert query["product"] == ["web"]
    assert len(query["state"][0]) >= 32
    assert CLIENT_SECRET not in url


def test_connect_stores_tokens_syncs_accounts_and_lands_on_the_dashboard(peers, trader, trader_client):
    ctrader_id, _ = peers
    response = callback(trader_client, consent(start(trader_client)))
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    ctid = Ctid.objects.get(user_id=9100001)
    assert ctid.trader == trader
    assert ctid.state == Ctid.State.CONNECTED
    token = CtidToken.objects.get(ctid=ctid)
    assert ctrader_id.world.grant_for_access_token(token.access_token).user_id == 9100001
    assert token.refresh_token in ctrader_id.world.refresh_tokens
    assert TradingAccount.objects.filter(ctid=ctid, status=TradingAccount.Status.ACTIVE).count() == 3
    assert ctrader_id.calls == ["authorization_code"]
    page = trader_client.get(reverse("dashboard"))
    text = page.content.decode()
    assert "cTrader ID 9100001" in text
    assert "710001" in text
    assert "12,500.50 EUR" in text
    assert reverse("ctid-sync", args=[ctid.pk]) in text
    assert token.access_token not in text
    assert token.refresh_token not in text
    assert AuditEvent.objects.filter(category="ctid", action="connect", outcome="connected").count() == 1


def test_replayed_state_is_refused_and_nothing_changes(peers, trader_client):
    ctrader_id, _ = peers
    redirect = consent(start(trader_client))
    assert callback(trader_client, redirect).status_code == 302
    token = CtidToken.objects.get()
    response = callback(trader_client, redirect)
    assert response.status_code == 400
    assert "already used" in response.content.decode()
    again = CtidToken.objects.get()
    assert (again.version, again.access_token) == (token.version, token.access_token)
    assert ctrader_id.calls == ["authorization_code"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"code": "x"}, "without the link we gave it"),
        ({"code": "x", "state": "forged-state-value"}, "opened in another browser or sign-in"),
    ],
)
def test_missing_or_unknown_state_is_refused(peers, trader_client, query, expected):
    ctrader_id, _ = peers
    start(trader_client)
    response = trader_client.get(reverse("ctid-callback"), query)
    assert response.status_code == 400
    assert expected in response.content.decode()
    assert not Ctid.objects.exists()
    assert not CtidToken.objects.exists()
    assert ctrader_id.calls == []


def test_a_state_from_another_session_is_refused(peers, trader_client):
    ctrader_id, _ = peers
    redirect = consent(start(trader_client))
    intruder = Client()
    intruder.force_login(TraderFactory().user)
    response = callback(intruder, redirect)
    assert response.status_code == 400
    assert not Ctid.objects.exists()
    assert ctrader_id.calls == []


def test_an_expired_state_is_refused(peers, trader_client, settings):
    ctrader_id, _ = peers
    redirect = consent(start(trader_client))
    settings.CTID_CONNECT_STATE_TTL_SECONDS = -1
    response = callback(trader_client, redirect)
    assert response.status_code == 400
    assert "expired" in response.content.decode()
    assert not Ctid.objects.exists()
    assert ctrader_id.calls == []


def test_a_missing_code_is_refused(peers, trader_client):
    ctrader_id, _ = peers
    state = parse_qs(urlsplit(start(trader_client)).query)["state"][0]
    response = trader_client.get(reverse("ctid-callback"), {"state": state})
    assert response.status_code == 400
    assert "without an answer" in response.content.decode()
    assert not Ctid.objects.exists()
    assert ctrader_id.calls == []


def test_denied_consent_connects_nothing(peers, trader_client):
    ctrader_id, _ = peers
    response = callback(trader_client, consent(start(trader_client), deny=True))
    assert response.status_code == 400
    assert "did not allow access" in response.content.decode()
    assert not Ctid.objects.exists()
    assert ctrader_id.calls == []


def test_a_ctid_owned_by_another_trader_is_refused_and_the_owner_keeps_a_live_chain(
    peers, trader, trader_client, other_trader
):
    ctrader_id, _ = peers
    world = ctrader_id.world
    callback(trader_client, consent(start(trader_client)))
    first = CtidToken.objects.get()
    other = Client()
    other.force_login(other_trader.user)
    response = callback(other, consent(start(other)))
    # The refusal is decided in the worker and shown on the dashboard once.
    assert response.status_code == 302
    assert "already connected to another" in other.get(response["Location"]).content.decode()
    assert "already connected to another" not in other.get(response["Location"]).content.decode()
    job = CtidJob.objects.get(trader=other_trader)
    assert job.state == CtidJob.State.FAILED
    assert job.access_token is None
    assert job.refresh_token is None
    ctid = Ctid.objects.get(user_id=9100001)
    assert ctid.trader == trader
    assert ctid.state == Ctid.State.CONNECTED
    assert not Ctid.objects.filter(trader=other_trader).exists()
    # The second consent ended the owner's chain at cTrader ID; its pair is now the owner's token.
    assert first.refresh_token not in world.refresh_tokens
    token = CtidToken.objects.get()
    assert token.ctid == ctid
    assert token.version == first.version + 1
    assert token.refresh_token in world.refresh_tokens
    assert world.grant_for_access_token(token.access_token)
    event = AuditEvent.objects.get(outcome="refused_other_owner")
    assert event.trader == other_trader
    assert event.detail["user_id"] == 9100001
    stored_event = AuditEvent.objects.get(action="token_replaced_by_other_trader")
    assert stored_event.trader == trader
    assert stored_event.detail["consenting_trader_id"] == other_trader.pk
    alert = AuditEvent.objects.get(action="consent_by_other_trader", outcome="alert")
    assert str(ctid.user_id) in alert.message
    for event in AuditEvent.objects.all():
        assert token.access_token not in str(event.detail) + event.message
    # The owner's chain is alive: a refresh works.
    assert ctid_token_refresh(ctid_id=ctid.pk, reason="test", seen_version=token.version).outcome == "ok"


def test_reconnecting_replaces_the_tokens_and_clears_needs_reconnect(peers, trader_client):
    ctrader_id, _ = peers
    callback(trader_client, consent(start(trader_client)))
    old = CtidToken.objects.get()
    ctrader_id.world.next_refresh_failure = "error"
    ctid_token_refresh(ctid_id=old.ctid_id, reason="test")
    assert Ctid.objects.get().state == Ctid.State.NEEDS_RECONNECT
    page = trader_client.get(reverse("dashboard")).content.decode()
    assert "needs to be reconnected" in page
    assert f'action="{reverse("ctid-connect")}"' in page
    assert "Reconnect cTrader ID 9100001" in page

    response = callback(trader_client, consent(start(trader_client)))
    assert response.status_code == 302
    new = CtidToken.objects.get()
    assert new.version == old.version + 1
    assert new.state == CtidToken.State.ACTIVE
    assert new.refresh_token != old.refresh_token
    assert old.refresh_token not in ctrader_id.world.refresh_tokens
    assert Ctid.objects.get().state == Ctid.State.CONNECTED
    assert AuditEvent.objects.filter(action="connect", outcome="reconnected").count() == 1


def test_connect_and_sync_need_post(peers, trader_client):
    assert trader_client.get(reverse("ctid-connect")).status_code == 405
    callback(trader_client, consent(start(trader_client)))
    assert trader_client.get(reverse("ctid-sync", args=[Ctid.objects.get().pk])).status_code == 405


def test_the_refresh_accounts_button_syncs_own_ctids_only(peers, trader_client, other_trader):
    _, openapi = peers
    callback(trader_client, consent(start(trader_client)))
    ctid = Ctid.objects.get()
    other = Client()
    other.force_login(other_trader.user)
    openapi["live"].clear_received()
    openapi["demo"].clear_received()
    assert other.post(reverse("ctid-sync", args=[ctid.pk])).status_code == 404
    assert openapi["live"].received() == []
    assert openapi["demo"].received() == []

    response = trader_client.post(reverse("ctid-sync", args=[ctid.pk]), follow=True)
    assert response.status_code == 200
    assert "are up to date: 3 active account(s)" in response.content.decode()
    assert openapi["live"].received(PayloadType.ACCOUNT_AUTH_REQ)


def test_no_token_or_secret_reaches_the_logs(peers, trader_client, caplog, staff_client, settings):
    """The whole run: connect, a refresh, a refused refresh, syncs, admin actions."""
    ctrader_id, _ = peers
    settings.TOKEN_REFRESH_RECENT_SECONDS = 0  # every refresh below really calls the endpoint
    caplog.set_level(logging.DEBUG)
    callback(trader_client, consent(start(trader_client)))
    ctid = Ctid.objects.get()
    secrets_seen = {CLIENT_SECRET}
    secrets_seen |= {CtidToken.objects.get().access_token, CtidToken.objects.get().refresh_token}
    ctid_token_refresh(ctid_id=ctid.pk, reason="test")
    secrets_seen |= {CtidToken.objects.get().access_token, CtidToken.objects.get().refresh_token}
    trader_client.post(reverse("ctid-sync", args=[ctid.pk]))
    staff_client.post(
        reverse("admin:accounts_ctid_changelist"), {"action": "refresh_now", "_selected_action": [ctid.pk]}
    )
    secrets_seen |= {CtidToken.objects.get().access_token, CtidToken.objects.get().refresh_token}
    ctrader_id.world.next_refresh_failure = "drop"
    with pytest.raises(TokenRefreshTransient):  # the answer was lost: only its logging matters here
        ctid_token_refresh(ctid_id=ctid.pk, reason="test")
    ctid_token_refresh(ctid_id=ctid.pk, reason="test")  # refused: the dropped answer rotated the token
    assert CtidToken.objects.get().state == CtidToken.State.NEEDS_RECONNECT
    staff_client.post(
        reverse("admin:accounts_ctid_changelist"), {"action": "sync_accounts", "_selected_action": [ctid.pk]}
    )

    assert len(caplog.records) > 5
    everything = caplog.text + "".join(repr(vars(record)) for record in caplog.records)
    # Plain booleans: a failing `in` on this much text would make pytest diff it for minutes.
    leaks = [
        everything[max(0, everything.find(s) - 200) : everything.find(s) + 50]
        for s in secrets_seen
        if s in everything
    ]
    assert leaks == []
    assert ("client_secret" in everything) is False
    assert ("refresh_token=" in everything) is False


def test_admin_actions_refresh_and_sync_without_showing_tokens(peers, trader_client, staff_client):
    ctrader_id, _ = peers
    callback(trader_client, consent(start(trader_client)))
    ctid = Ctid.objects.get()
    TradingAccount.objects.all().delete()
    response = staff_client.post(
        reverse("admin:accounts_ctidtoken_changelist"),
        {"action": "refresh_now", "_selected_action": [CtidToken.objects.get().pk]},
        follow=True,
    )
    token = CtidToken.objects.get()
    assert token.version == 2
    assert ctrader_id.calls == ["authorization_code", "refresh_token"]
    assert "1 token refresh(es) queued" in response.content.decode()
    response = staff_client.post(
        reverse("admin:accounts_ctid_changelist"),
        {"action": "sync_accounts", "_selected_action": [ctid.pk]},
        follow=True,
    )
    text = response.content.decode()
    assert "1 account sync(s) queued" in text
    assert TradingAccount.objects.filter(ctid=ctid).count() == 3
    assert token.access_token not in text
    assert token.refresh_token not in text
    assert AuditEvent.objects.filter(category="ctid", action="token_refresh", actor__is_staff=True).exists()


def test_a_failed_first_sync_still_connects_and_the_button_recovers(peers, trader_client):
    _, openapi = peers
    openapi["live"].fail_next(PayloadType.GET_ACCOUNTS_BY_ACCESS_TOKEN_REQ, "SERVER_IS_UNDER_MAINTENANCE")
    response = callback(trader_client, consent(start(trader_client)))
    assert response.status_code == 302
    ctid = Ctid.objects.get()
    assert CtidToken.objects.filter(ctid=ctid, state=CtidToken.State.ACTIVE).exists()
    assert "SERVER_IS_UNDER_MAINTENANCE" in ctid.last_sync_error
    page = trader_client.get(response["Location"]).content.decode()
    assert "could not read its accounts yet" in page
    response = trader_client.post(reverse("ctid-sync", args=[ctid.pk]), follow=True)
    assert TradingAccount.objects.filter(ctid=ctid).count() == 3
    ctid.refresh_from_db()
    assert ctid.last_sync_error == ""


def test_a_trader_cannot_use_the_staff_refresh_or_sync(peers, trader_client):
    ctrader_id, openapi = peers
    callback(trader_client, consent(start(trader_client)))
    ctid = Ctid.objects.get()
    openapi["live"].clear_received()
    for action in ("refresh_now", "sync_accounts"):
        response = trader_client.post(
            reverse("admin:accounts_ctid_changelist"), {"action": action, "_selected_action": [ctid.pk]}
        )
        assert response.status_code == 302
        assert reverse("admin:login") in response["Location"]
    assert ctrader_id.calls == ["authorization_code"]
    assert openapi["live"].received() == []
    assert CtidToken.objects.get().version == 1


def test_admin_actions_queue_and_never_run_in_the_request(
    staff_client, monkeypatch, django_capture_on_commit_callbacks
):
    from accounts.services import jobs
    from tests.factories import CtidTokenFactory

    # The real queueing of this mode (embedded: the in-process worker), not the inline runner of this module.
    monkeypatch.undo()
    started: list[object] = []
    monkeypatch.setattr(
        jobs, "_in_process_worker", lambda: type("W", (), {"submit": lambda *a: started.append(a)})
    )
    tokens = CtidTokenFactory.create_batch(3)
    ctid_ids = sorted(t.ctid_id for t in tokens)

    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(
            reverse("admin:accounts_ctid_changelist"),
            {"action": "refresh_now", "_selected_action": ctid_ids},
            follow=True,
        )
    # Queued, not run: nothing was refreshed in the request; the work starts after the commit.
    assert {t.version for t in CtidToken.objects.all()} == {1}
    assert "3 token refresh(es) queued" in response.content.decode()
    event = AuditEvent.objects.get(category="ctid", action="token_refresh")
    assert event.outcome == "queued"
    assert sorted(event.detail["ctid_ids"]) == ctid_ids
    assert len(callbacks) == 3
    assert started == []
    for callback in callbacks:
        callback()
    assert len(started) == 3  # handed to the in-process worker threads, not run here


@pytest.mark.django_db(transaction=True)
def test_two_traders_connecting_the_same_new_ctid_at_once_get_one_connect_and_one_409(
    peers, trader, other_trader
):
    """Both callbacks pass the ownership read before either inserts; one insert wins, the other gets 409."""
    import threading

    import psycopg
    from django.db import connection

    clients = []
    redirects = []
    for owner in (trader, other_trader):
        client = Client()
        client.force_login(owner.user)
        clients.append(client)
        redirects.append(consent(start(client)))
    db = connection.settings_dict
    blocker = psycopg.connect(
        dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"], host=db["HOST"], port=db["PORT"] or 5432
    )
    # Hold inserts into the cTID table until both callbacks are waiting to insert.
    blocker.execute(f"LOCK TABLE {Ctid._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
    results: list[object] = []

    def run(client: Client, redirect: str) -> None:
        try:
            results.append(callback(client, redirect).status_code)
        except BaseException as exc:
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in zip(clients, redirects, strict=True)]
    for t in threads:
        t.start()
    try:
        waiting = 0
        for _ in range(300):
            with blocker.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
                    [Ctid._meta.db_table],
                )
                row = cursor.fetchone()
            waiting = row[0] if row else 0
            if waiting == 2:
                break
            threading.Event().wait(0.05)
        assert waiting == 2, "both callbacks should be waiting to insert the cTID"
    finally:
        blocker.rollback()
        blocker.close()
    for t in threads:
        t.join(30)
    # Both callbacks hand the work on; the jobs ran: one connected, the other was refused (never a 500).
    assert sorted(map(str, results)) == ["302", "302"], results
    states = sorted(CtidJob.objects.filter(kind=CtidJob.Kind.CONNECT).values_list("state", flat=True))
    assert states == [CtidJob.State.DONE, CtidJob.State.FAILED]
    ctid = Ctid.objects.get(user_id=9100001)
    assert Ctid.objects.count() == 1
    assert AuditEvent.objects.filter(outcome="refused_other_owner").count() == 1
    token = CtidToken.objects.get()
    assert token.ctid == ctid
    assert token.state == CtidToken.State.ACTIVE


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_reconnect_whose_profile_lookup_fails_keeps_the_pair_and_a_worker_places_it(
    peers, trader, trader_client, celery_worker
):
    from accounts.models import CtidPendingConsent

    ctrader_id, openapi = peers
    world = ctrader_id.world
    callback(trader_client, consent(start(trader_client)))
    old = CtidToken.objects.get()
    world.next_refresh_failure = "error"
    ctid_token_refresh(ctid_id=old.ctid_id, reason="test")
    assert Ctid.objects.get().state == Ctid.State.NEEDS_RECONNECT

    # Reconnect: the code exchange works (ending the old chain), then the profile lookup fails, twice.
    openapi["live"].fail_next(
        PayloadType.GET_CTID_PROFILE_BY_TOKEN_REQ, "SERVER_IS_UNDER_MAINTENANCE", times=2
    )
    response = callback(trader_client, consent(start(trader_client)))
    assert response.status_code == 302
    job = CtidJob.objects.filter(trader=trader, kind=CtidJob.Kind.CONNECT).latest("created_at")
    assert "finish connecting it in the background" in job.message
    assert old.refresh_token not in world.refresh_tokens
    pending = CtidPendingConsent.objects.get()
    assert pending.trader == trader
    assert pending.refresh_token in world.refresh_tokens
    page = trader_client.get("/").content.decode()
    assert pending.access_token not in page
    assert pending.refresh_token not in page

    # The worker retries the lookup (the second attempt also fails) and then stores the pair on the cTID.
    wait_for(lambda: not CtidPendingConsent.objects.exists() and Ctid.objects.get().state == "connected")
    token = CtidToken.objects.get()
    assert token.ctid == Ctid.objects.get(user_id=9100001)
    assert token.ctid.trader == trader
    assert token.refresh_token in world.refresh_tokens
    assert token.version == old.version + 1
    assert token.state == CtidToken.State.ACTIVE
    assert AuditEvent.objects.filter(action="connect", outcome="reconnected").count() == 1
    # The chain is alive.
    assert ctid_token_refresh(ctid_id=token.ctid_id, reason="test", seen_version=token.version).ok


def test_in_embedded_mode_the_periodic_entry_places_a_kept_consent(peers, trader, trader_client):
    from accounts import tasks
    from accounts.models import CtidPendingConsent

    _, openapi = peers
    openapi["live"].fail_next(PayloadType.GET_CTID_PROFILE_BY_TOKEN_REQ, "SERVER_IS_UNDER_MAINTENANCE")
    response = callback(trader_client, consent(start(trader_client)))
    assert response.status_code == 302
    job = CtidJob.objects.get(trader=trader, kind=CtidJob.Kind.CONNECT)
    assert "finish connecting it in the background" in job.message
    assert not Ctid.objects.exists()
    assert CtidPendingConsent.objects.count() == 1
    assert tasks.run_pending_consent_identification() == 1
    ctid = Ctid.objects.get()
    assert ctid.trader == trader
    assert CtidToken.objects.get(ctid=ctid).state == CtidToken.State.ACTIVE
    assert not CtidPendingConsent.objects.exists()
    assert TradingAccount.objects.filter(ctid=ctid).count() == 3
