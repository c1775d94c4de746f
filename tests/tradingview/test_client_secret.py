"""Client secrets: stored as a digest, checked in constant time; secrets stored with a password hasher still work."""

from __future__ import annotations

from django.contrib.auth.hashers import make_password

from tests.helpers.tradingview import exchange, link
from tradingview.models import OAuthClient


def test_new_secrets_are_stored_as_a_digest_not_the_secret(tv_client):
    stored = OAuthClient.objects.get(pk=tv_client.client.pk).client_secret_hash
    assert stored.startswith("sha256$")
    assert len(stored) == len("sha256$") + 64
    assert tv_client.secret not in stored
    assert tv_client.client.check_secret(tv_client.secret)
    assert not tv_client.client.check_secret(tv_client.secret[:-1])
    assert not tv_client.client.check_secret("")


def test_a_secret_stored_with_a_password_hasher_works_once_and_is_moved_to_the_digest(
    adapter, tv_client, browser_client, accounts
):
    OAuthClient.objects.filter(pk=tv_client.client.pk).update(
        client_secret_hash=make_password(tv_client.secret)
    )
    code = link(browser_client, tv_client, [accounts[0].pk])
    assert exchange(tv_client, code, client_secret="wrong").json()["error"] == "invalid_client"
    # A wrong secret changes nothing stored.
    assert not OAuthClient.objects.get(pk=tv_client.client.pk).client_secret_hash.startswith("sha256$")

    response = exchange(tv_client, code)
    assert response.status_code == 200, response.content
    client = OAuthClient.objects.get(pk=tv_client.client.pk)
    assert client.client_secret_hash.startswith("sha256$")
    assert client.check_secret(tv_client.secret)
    assert not client.check_secret("wrong")
