"""The TradingView token endpoint throttles failed client authentications per client and per address, and
keeps one audit record with a count instead of a row per failure."""

from __future__ import annotations

from accounts.models import AuditEvent
from tests.helpers.tradingview import REDIRECT_URI, link, token_post


def exchange(tv, code, *, REMOTE_ADDR, **overrides):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": tv.client.client_id,
        "client_secret": tv.secret,
        **overrides,
    }
    return token_post(data, REMOTE_ADDR=REMOTE_ADDR)


def _failures():
    return AuditEvent.objects.filter(action="client_auth", outcome="invalid_client")


def test_repeated_failures_are_one_audit_record_with_a_count(adapter, tv_client, browser_client, accounts):
    code = link(browser_client, tv_client, [accounts[0].pk])
    for _ in range(4):
        assert exchange(tv_client, code, client_secret="guess", REMOTE_ADDR="198.51.100.9").status_code == 401
    (record,) = _failures()
    assert record.detail["count"] == 4
    assert record.detail["client_id"] == tv_client.client.client_id
    assert record.detail["address"] == "198.51.100.9"
    assert "guess" not in str(record.detail)
    # The code was never spent by the failures.
    assert exchange(tv_client, code, REMOTE_ADDR="198.51.100.9").status_code == 200


def test_failures_past_the_limit_wait_per_client_and_address(
    adapter, tv_client, browser_client, accounts, settings
):
    settings.TRADINGVIEW_TOKEN_CLIENT_FAILURE_LIMIT = 3
    code = link(browser_client, tv_client, [accounts[0].pk])
    for _ in range(3):
        exchange(tv_client, code, client_secret="guess", REMOTE_ADDR="198.51.100.9")
    blocked = exchange(tv_client, code, REMOTE_ADDR="198.51.100.9")
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) > 0
    assert blocked.json()["error"] == "invalid_client"
    # The same client from TradingView's own address is not cut off by someone else's guesses.
    assert exchange(tv_client, code, REMOTE_ADDR="203.0.113.44").status_code == 200
    assert _failures().get().detail["count"] == 3


def test_failures_across_clients_from_one_address_wait_at_the_address_limit(
    adapter, tv_client, browser_client, accounts, settings
):
    settings.TRADINGVIEW_TOKEN_CLIENT_FAILURE_LIMIT = 100
    settings.TRADINGVIEW_TOKEN_ADDRESS_FAILURE_LIMIT = 5
    code = link(browser_client, tv_client, [accounts[0].pk])
    for i in range(5):
        exchange(tv_client, code, client_id=f"tv-guess-{i}", REMOTE_ADDR="198.51.100.10")
    assert exchange(tv_client, code, REMOTE_ADDR="198.51.100.10").status_code == 429
    assert sum(r.detail["count"] for r in _failures()) == 5
    assert exchange(tv_client, code, REMOTE_ADDR="198.51.100.11").status_code == 200


def test_a_good_code_exchange_makes_no_cache_round_trip(
    adapter, tv_client, browser_client, accounts, settings, monkeypatch
):
    # The usual exchange asks its own statement whether this address failed recently: the cache (Redis in
    # production) is asked only once something is not as a successful exchange needs it.
    import redis

    from tests.helpers.ops import TEST_REDIS_URL

    settings.CACHES = {
        "default": {
            "BACKEND": "clientarea.cache.RedisCache",
            "LOCATION": TEST_REDIS_URL,
            "KEY_PREFIX": "test-token-throttle",
        }
    }
    code = link(browser_client, tv_client, [accounts[0].pk])
    sent: list[str] = []
    original = redis.Redis.execute_command

    def recorded(self, *args, **options):
        sent.append(str(args[0]))
        return original(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", recorded)
    assert exchange(tv_client, code, REMOTE_ADDR="198.51.100.20").status_code == 200
    assert sent == []
    # An address with a failure in the window is still looked up before its secret is checked.
    exchange(tv_client, "no-such-code", client_secret="guess", REMOTE_ADDR="198.51.100.21")
    sent.clear()
    code = link(browser_client, tv_client, [accounts[0].pk])
    assert exchange(tv_client, code, REMOTE_ADDR="198.51.100.21").status_code == 200
    assert "GET" in sent


def test_a_blocked_address_waits_whatever_its_secret_and_its_code(
    adapter, tv_client, browser_client, accounts, settings
):
    # Right secret and valid code, wrong secret, unknown code: the same 429, and the code stays unspent.
    settings.TRADINGVIEW_TOKEN_CLIENT_FAILURE_LIMIT = 2
    code = link(browser_client, tv_client, [accounts[0].pk])
    for _ in range(2):
        exchange(tv_client, "no-such-code", client_secret="guess", REMOTE_ADDR="198.51.100.30")
    answers = [
        exchange(tv_client, code, REMOTE_ADDR="198.51.100.30"),
        exchange(tv_client, code, client_secret="guess", REMOTE_ADDR="198.51.100.30"),
        exchange(tv_client, "no-such-code", REMOTE_ADDR="198.51.100.30"),
    ]
    assert [a.status_code for a in answers] == [429, 429, 429]
    assert {a.json()["error"] for a in answers} == {"invalid_client"}
    assert all(int(a["Retry-After"]) > 0 for a in answers)
    assert exchange(tv_client, code, REMOTE_ADDR="203.0.113.45").status_code == 200
