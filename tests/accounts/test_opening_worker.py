"""The opening on a real Celery worker over the real Redis: transient failures are resumed with backoff."""

from __future__ import annotations

import secrets
import time

import pytest

from accounts.models import AccountOpening, TradingAccount
from accounts.services import opening as service
from tests.helpers.ctrader import wait_for
from tests.helpers.webservices import TRADING_PASSWORD, verified_trader

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery]


def test_the_worker_resumes_after_a_lost_answer_and_a_rate_limit_and_opens_one_account(
    webservices, demo_type, celery_worker
) -> None:
    trader = verified_trader()
    webservices.demo.fail_next("trader_create", "lost")
    webservices.live.fail_next("ctid_link", "REQUEST_FREQUENCY_EXCEEDED")
    opening = service.account_opening_start(
        trader=trader,
        request=service.OpeningRequest(
            account_type=demo_type, deposit_currency="EUR", leverage=30, key=secrets.token_urlsafe(8)
        ),
        password=TRADING_PASSWORD,
    )
    wait_for(lambda: AccountOpening.objects.get(pk=opening.pk).state == AccountOpening.State.DONE, timeout=30)
    done = AccountOpening.objects.get(pk=opening.pk)
    assert done.attempts == 3  # lost create, rate-limited link, then through
    assert len(webservices.demo.traders) == 1
    assert len(webservices.demo.calls_to("trader_create")) == 1
    assert len(webservices.live.calls_to("ctid_link")) == 2
    assert TradingAccount.objects.filter(ctid__trader=trader).count() == 1


def test_a_timed_out_link_is_retried_by_the_worker(webservices, demo_type, celery_worker, settings) -> None:
    settings.HTTP_READ_TIMEOUT = 0.5
    trader = verified_trader()
    webservices.live.fail_next("ctid_link", "timeout")
    opening = service.account_opening_start(
        trader=trader,
        request=service.OpeningRequest(
            account_type=demo_type, deposit_currency="EUR", leverage=30, key=secrets.token_urlsafe(8)
        ),
        password=TRADING_PASSWORD,
    )
    wait_for(lambda: AccountOpening.objects.get(pk=opening.pk).state == AccountOpening.State.DONE, timeout=30)
    assert len(webservices.demo.traders) == 1


def test_embedded_mode_retries_in_process_without_a_broker(webservices, demo_type, settings) -> None:
    settings.ACCOUNT_OPENING_RETRY_IN_PROCESS = True
    trader = verified_trader()
    webservices.demo.fail_next("trader_create", "lost")
    opening = service.account_opening_start(
        trader=trader,
        request=service.OpeningRequest(
            account_type=demo_type, deposit_currency="EUR", leverage=30, key=secrets.token_urlsafe(8)
        ),
        password=TRADING_PASSWORD,
    )  # eager: runs here, then a timer in this process resumes it
    wait_for(lambda: AccountOpening.objects.get(pk=opening.pk).state == AccountOpening.State.DONE, timeout=30)
    assert len(webservices.demo.traders) == 1


def test_a_verification_mail_is_retried_until_the_mail_server_takes_it(
    mailbox, celery_worker, settings
) -> None:
    from accounts.services.email_verification import email_verification_send
    from sandbox.mail import _free_port

    trader = verified_trader()
    settings.EMAIL_PORT = _free_port("127.0.0.1")  # nothing listens there: the first attempt fails
    email_verification_send(trader=trader)
    time.sleep(0.3)
    assert mailbox.mails() == []
    settings.EMAIL_PORT = mailbox.port  # the server is back: a retry delivers it
    mail = mailbox.wait_for(to=trader.user.email, subject_contains="Confirm", timeout=20)[0]
    assert "/email/verify/" in mail.body
