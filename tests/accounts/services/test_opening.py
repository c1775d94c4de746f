"""Opening accounts end to end against the WebServices simulator on loopback, with a real SMTP server."""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlsplit

import pytest
from django.core import serializers
from django.db import connection
from django.test import Client

from accounts import tasks
from accounts.ctrader.webservices import md5_hex
from accounts.models import AccountOpening, AuditEvent, Ctid, TradingAccount
from accounts.services import opening as service
from accounts.services import opening_run
from tests.factories import CtidFactory, TraderFactory
from tests.helpers.webservices import TRADING_PASSWORD, link_in, verified_trader

pytestmark = pytest.mark.django_db


def start(
    trader, account_type, *, key: str | None = None, password: str = TRADING_PASSWORD, source="dashboard"
):
    return service.account_opening_start(
        trader=trader,
        request=service.OpeningRequest(
            account_type=account_type,
            deposit_currency=account_type.currencies[0],
            leverage=account_type.leverages[0],
            key=key or secrets.token_urlsafe(12),
            source=source,
        ),
        password=password,
    )


def run(opening, password: str = TRADING_PASSWORD) -> str:
    return tasks.open_trading_account.apply(args=(opening.pk, service.seal_password_hash(password))).get()


def fresh(opening) -> AccountOpening:
    return AccountOpening.objects.get(pk=opening.pk)


def test_email_verification_link_arrives_by_smtp_and_verifies(
    mailbox, webservices, demo_type, django_capture_on_commit_callbacks
) -> None:
    trader = TraderFactory()
    client = Client()
    client.force_login(trader.user)
    page = client.get("/open/")
    assert b"Confirm your email address" in page.content
    with pytest.raises(service.OpeningRefused) as refused:
        start(trader, demo_type)
    assert refused.value.code == "email_unverified"

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/email/verify/", {"next": "/open/?tv=1"})
    assert response.status_code == 302
    mail = mailbox.wait_for(to=trader.user.email, subject_contains="Confirm")[0]
    link = urlsplit(link_in(mail.body))
    # Another trader cannot use the link.
    intruder = Client()
    intruder.force_login(TraderFactory().user)
    intruder.get(f"{link.path}?{link.query}")
    assert not service.email_is_verified(trader=TraderFactory.build())
    assert AuditEvent.objects.filter(action="email_verified").count() == 0
    landed = client.get(f"{link.path}?{link.query}")
    assert landed.status_code == 302
    assert landed["Location"] == "/open/?tv=1"
    trader.refresh_from_db()
    assert service.email_is_verified(trader=trader)


def test_dashboard_form_opens_a_demo_account_and_mails_the_trader(
    mailbox, webservices, demo_type, django_capture_on_commit_callbacks, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    trader = verified_trader()
    client = Client()
    client.force_login(trader.user)
    assert b"Open an account" in client.get("/").content
    form = client.get(f"/open/?type={demo_type.pk}")
    assert form.status_code == 200
    key = form.context["form"].initial["key"]
    data = {
        "account_type": demo_type.pk,
        "key": key,
        "deposit_currency": "USD",
        "leverage": "100",
        "password": TRADING_PASSWORD,
        "password_confirm": TRADING_PASSWORD,
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/open/", data)
    assert response.status_code == 302
    opening = AccountOpening.objects.get(trader=trader)
    assert response["Location"] == f"/open/{opening.public_id}/"
    assert opening.state == AccountOpening.State.DONE, (opening.error_code, opening.error)
    assert opening.step == AccountOpening.Step.DONE
    account = opening.account
    assert account is not None
    assert not account.is_live
    assert account.is_tradingview
    assert account.jurisdiction == demo_type.jurisdiction
    assert account.currency == "USD"
    assert account.ctid.trader == trader
    assert account.ctid.user_id == opening.ctid_user_id
    sim_account = webservices.world.account(account.ctid_trader_account_id)
    assert sim_account is not None
    assert sim_account.trader_login == account.login
    assert not sim_account.is_live

    # The calls, in order, with the right bodies; a new cTID for the verified email. cTID calls go to the
    # live host, the trading account is created on the demo host.
    demo, live = webservices.demo, webservices.live
    assert [c.call for c in live.calls] == ["manager_token", "ctid_create", "ctid_link"]
    assert [c.call for c in demo.calls] == ["manager_token", "trader_create"]
    assert live.calls_to("ctid_link")[0].json["environmentName"] == "demo"
    created = demo.calls_to("trader_create")[0].json
    assert created["hashedPassword"] == md5_hex(TRADING_PASSWORD)
    assert created["description"] == opening.tag
    assert created["leverageInCents"] == 10000
    assert created["balance"] == 1_000_000
    assert created["groupName"] == "SANDBOX-TV"
    assert created["depositCurrency"] == "USD"
    assert live.calls_to("ctid_create")[0].json["email"] == trader.user.email.lower()

    ready = mailbox.wait_for(to=trader.user.email, subject_contains="is ready")[0]
    assert str(account.login) in ready.body
    assert "Demo" in ready.body

    status = client.get(f"/open/{opening.public_id}/status.json").json()
    assert status["finished"]
    assert status["account"]["login"] == account.login

    # Neither the password nor its hash anywhere: database rows, pages, mails, log lines.
    secrets_ = [TRADING_PASSWORD, md5_hex(TRADING_PASSWORD)]
    pages = [
        client.get(p).content.decode()
        for p in ("/", f"/open/{opening.public_id}/", f"/accounts/{account.ctid_trader_account_id}/")
    ]
    rows = serializers.serialize(
        "json", [*AccountOpening.objects.all(), *TradingAccount.objects.all(), *AuditEvent.objects.all()]
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT string_agg(t::text, ' ') FROM accounts_accountopening t")
        raw = cursor.fetchone()[0]
    text = "\n".join([*pages, rows, raw, caplog.text, *(m.raw.decode() for m in mailbox.mails())])
    for secret in secrets_:
        assert secret not in text


def test_a_double_submitted_form_opens_one_account(
    webservices, demo_type, django_capture_on_commit_callbacks
) -> None:
    trader = verified_trader()
    with django_capture_on_commit_callbacks(execute=True):
        first = start(trader, demo_type, key="same-key")
        second = start(trader, demo_type, key="same-key")
    assert first.pk == second.pk
    assert AccountOpening.objects.filter(trader=trader).count() == 1
    assert len(webservices.demo.traders) == 1
    assert len(webservices.demo.calls_to("trader_create")) == 1


def test_a_lost_create_answer_is_reconciled_never_a_second_account(webservices, demo_type) -> None:
    trader = verified_trader()
    opening = start(trader, demo_type)
    webservices.demo.fail_next("trader_create", "lost")
    assert run(opening) == "retrying"
    assert fresh(opening).state == AccountOpening.State.RETRYING
    assert fresh(opening).step == AccountOpening.Step.CREATE
    assert len(webservices.demo.traders) == 1  # created, answer lost
    assert run(opening) == AccountOpening.State.DONE
    assert len(webservices.demo.traders) == 1
    assert len(webservices.demo.calls_to("trader_create")) == 1
    assert fresh(opening).trader_login == next(iter(webservices.demo.traders))
    assert TradingAccount.objects.filter(ctid__trader=trader).count() == 1


def test_a_timed_out_create_that_never_happened_is_created_on_retry(webservices, demo_type) -> None:
    trader = verified_trader()
    opening = start(trader, demo_type)
    webservices.demo.fail_next("trader_create", "UNKNOWN_ERROR")
    assert run(opening) == "retrying"
    assert run(opening) == AccountOpening.State.DONE
    assert len(webservices.demo.traders) == 1
    assert len(webservices.demo.calls_to("trader_create")) == 2
    assert len(webservices.demo.calls_to("traders_list")) == 1  # looked up before creating again


def test_rate_limit_queues_the_opening_and_tells_the_trader(webservices, demo_type) -> None:
    trader = verified_trader()
    opening = start(trader, demo_type)
    webservices.live.fail_next("ctid_link", "REQUEST_FREQUENCY_EXCEEDED")
    assert run(opening) == "retrying"
    queued = fresh(opening)
    assert queued.state == AccountOpening.State.RETRYING
    assert queued.step == AccountOpening.Step.LINK
    assert "queued" in queued.error
    assert queued.next_attempt_at is not None
    assert run(opening) == AccountOpening.State.DONE
    assert len(webservices.demo.traders) == 1


@pytest.mark.parametrize("name", ["TRADER_GROUP_NOT_FOUND", "CH_BROKER_NOT_FOUND", "NOT_ENOUGH_RIGHTS"])
def test_a_permanent_refusal_stops_alerts_staff_and_retries_nothing(webservices, demo_type, name) -> None:
    trader = verified_trader()
    opening = start(trader, demo_type)
    webservices.demo.fail_next("trader_create", name, times=2)
    assert run(opening) == AccountOpening.State.FAILED
    failed = fresh(opening)
    assert failed.staff_alert
    assert failed.error_code == name
    assert failed.finished_at is not None
    assert "Our team has been told" in failed.error
    assert name not in failed.error
    calls = len(webservices.demo.calls_to("trader_create"))
    assert run(opening) == AccountOpening.State.FAILED  # a stray second run does nothing
    assert len(webservices.demo.calls_to("trader_create")) == calls
    assert AuditEvent.objects.filter(category="opening", action="fail").exists()


def test_a_ctid_of_another_trader_is_refused_with_an_audit_record(webservices, demo_type) -> None:
    trader = verified_trader()
    user_id, _ = webservices.world.ctid_for_email(trader.user.email)
    CtidFactory(user_id=user_id, trader=TraderFactory())
    opening = start(trader, demo_type)
    assert run(opening) == AccountOpening.State.FAILED
    assert fresh(opening).error_code == "ctid_owned_elsewhere"
    assert AuditEvent.objects.filter(action="ctid_owned_elsewhere", trader=trader).exists()
    assert webservices.demo.calls_to("trader_create") == []


def test_the_connected_ctid_is_used_and_the_live_account_goes_to_the_live_host(
    webservices, live_type
) -> None:
    trader = verified_trader(kyc_verified=True)
    ctid = CtidFactory(user_id=7001001, trader=trader, state=Ctid.State.CONNECTED)
    opening = start(trader, live_type)
    assert run(opening) == AccountOpening.State.DONE
    account = fresh(opening).account
    assert account is not None
    assert account.ctid == ctid
    assert account.is_live
    assert webservices.live.calls_to("ctid_create") == []
    assert webservices.demo.calls == []
    assert webservices.live.calls_to("ctid_link")[0].json["environmentName"] == "live"


def test_kyc_types_are_refused_to_unverified_traders(webservices, live_type) -> None:
    with pytest.raises(service.OpeningRefused) as refused:
        start(verified_trader(kyc_verified=False), live_type)
    assert refused.value.code == "type_unavailable"


def test_an_expired_password_hash_asks_for_the_password_again(webservices, demo_type, settings) -> None:
    trader = verified_trader()
    opening = start(trader, demo_type)
    assert (
        tasks.open_trading_account.apply(args=(opening.pk, "")).get() == AccountOpening.State.NEEDS_PASSWORD
    )
    assert webservices.demo.calls_to("trader_create") == []
    client = Client()
    client.force_login(trader.user)
    page = client.get(f"/open/{opening.public_id}/")
    assert b"Trading password" in page.content
    bad = client.post(
        f"/open/{opening.public_id}/password/", {"password": "short", "password_confirm": "short"}
    )
    assert bad.status_code == 400
    service.account_opening_provide_password(
        trader=trader, public_id=opening.public_id, password=TRADING_PASSWORD
    )
    assert fresh(opening).state == AccountOpening.State.QUEUED
    assert run(opening) == AccountOpening.State.DONE


def test_another_traders_opening_is_a_404(webservices, demo_type) -> None:
    opening = start(verified_trader(), demo_type)
    client = Client()
    client.force_login(TraderFactory().user)
    assert client.get(f"/open/{opening.public_id}/status.json").status_code == 404
    assert client.get(f"/open/{opening.public_id}/").status_code == 404


def test_malformed_form_input_is_a_400_not_a_500(webservices, demo_type) -> None:
    client = Client()
    client.force_login(verified_trader().user)
    for data in (
        {"account_type": demo_type.pk, "key": "k", "deposit_currency": "XXX", "leverage": "abc"},
        {
            "account_type": demo_type.pk,
            "key": "k",
            "deposit_currency": "EUR",
            "leverage": "30",
            "password": "abcdefgh1",
            "password_confirm": "different1",
        },
    ):
        assert client.post("/open/", data).status_code == 400
    assert client.post("/open/", {"account_type": "nope"}).status_code == 200  # back to the choice
    assert AccountOpening.objects.count() == 0


def test_approval_types_wait_for_staff_then_the_trader_sets_the_password(
    webservices, demo_type, mailbox, staff_user, django_capture_on_commit_callbacks
) -> None:
    from tradingview.models import AccountRequest

    demo_type.who_may_open = "approval"
    demo_type.save()
    trader = verified_trader()
    opening = start(trader, demo_type, password=None)  # type: ignore[arg-type]
    assert opening.state == AccountOpening.State.AWAITING_APPROVAL
    request = AccountRequest.objects.get(opening=opening)
    with django_capture_on_commit_callbacks(execute=True):
        service.account_opening_approve(opening=opening, actor=staff_user)
    assert fresh(opening).state == AccountOpening.State.NEEDS_PASSWORD
    mailbox.wait_for(to=trader.user.email, subject_contains="approved")
    with django_capture_on_commit_callbacks(execute=True):
        service.account_opening_provide_password(
            trader=trader, public_id=opening.public_id, password=TRADING_PASSWORD
        )
    assert fresh(opening).state == AccountOpening.State.DONE
    request.refresh_from_db()
    assert request.state == AccountRequest.State.FULFILLED
    assert request.account == fresh(opening).account


def test_a_second_delivery_while_a_runner_holds_the_opening_waits_for_the_lease(
    webservices, demo_type
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    opening = start(verified_trader(), demo_type)
    AccountOpening.objects.filter(pk=opening.pk).update(
        state=AccountOpening.State.RUNNING, lease_until=timezone.now() + timedelta(seconds=30)
    )
    with pytest.raises(service.OpeningRetry):
        opening_run.account_opening_run(
            opening_id=opening.pk, sealed_password_hash=service.seal_password_hash(TRADING_PASSWORD)
        )
    assert 29 < opening_run.opening_countdown(opening_id=opening.pk) <= 31
    assert webservices.demo.calls_to("trader_create") == []
    # The holder died: once its lease is over, the next delivery takes over from the recorded step.
    AccountOpening.objects.filter(pk=opening.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert run(opening) == AccountOpening.State.DONE


def test_a_second_approval_request_while_one_waits_is_refused_plainly(webservices, demo_type) -> None:
    demo_type.who_may_open = "approval"
    demo_type.save()
    trader = verified_trader()
    start(trader, demo_type, password=None)  # type: ignore[arg-type]
    with pytest.raises(service.OpeningRefused) as refused:
        start(trader, demo_type, password=None)  # type: ignore[arg-type]
    assert refused.value.code == "request_pending"
    assert AccountOpening.objects.filter(trader=trader).count() == 1
