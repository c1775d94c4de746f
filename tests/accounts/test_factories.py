from django.contrib.auth import authenticate
from django.db import connection

from accounts.models import CtidToken
from tests.factories import PASSWORD, CtidTokenFactory, TradingAccountFactory


def test_factories_build_a_full_chain(trader):
    token = CtidTokenFactory(ctid__trader=trader)
    account = TradingAccountFactory(ctid=token.ctid)
    assert account.ctid.trader == trader
    assert account.broker_name == account.jurisdiction.broker_name
    stored = CtidToken.objects.get(pk=token.pk)
    assert stored.access_token == token.access_token
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token FROM accounts_ctidtoken WHERE id = %s", [token.pk])
        (raw,) = cursor.fetchone()
    assert token.access_token not in raw


def test_trader_password_is_known(trader, rf):
    assert authenticate(rf.post("/account/login/"), username=trader.user.username, password=PASSWORD)


def test_trader_client_is_signed_in(trader_client, trader):
    assert int(trader_client.session["_auth_user_id"]) == trader.user.pk
