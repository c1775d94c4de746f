"""The Redis cache backend that keeps one client per connection pool: every operation as Django's, on a real
Redis, from several threads; one client built, not one per operation."""

from __future__ import annotations

import secrets
import threading

import redis

from clientarea.cache import RedisCache
from tests.helpers.ops import TEST_REDIS_URL


def _cache() -> RedisCache:
    prefix = f"test-cache-{secrets.token_hex(4)}"
    return RedisCache(TEST_REDIS_URL, {"KEY_PREFIX": prefix, "OPTIONS": {"socket_timeout": 2.0}})


def test_the_operations_behave_as_djangos(monkeypatch):
    cache = _cache()
    built: list[object] = []
    real_init = redis.Redis.__init__

    def counting_init(self, *args, **kwargs):
        built.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting_init)
    try:
        assert cache.get("missing") is None
        assert cache.add("claim", 1, timeout=30) is True
        assert cache.add("claim", 2, timeout=30) is False
        assert cache.get("claim") == 1
        cache.set("n", 5, timeout=30)
        assert cache.incr("n") == 6
        cache.set_many({"a": {"x": [1, 2]}, "b": "β"}, timeout=30)
        assert cache.get_many(["a", "b", "missing"]) == {"a": {"x": [1, 2]}, "b": "β"}
        assert cache.delete("claim") is True
        assert cache.get("claim", "gone") == "gone"
        assert cache.touch("n", 60) is True
        # One client for all of them: the pool's connections are borrowed per command.
        assert len(built) == 1
    finally:
        cache.delete_many(["claim", "n", "a", "b"])


def test_one_client_serves_many_threads():
    cache = _cache()
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(50):
                key = f"t{i}-{j}"
                cache.set(key, (i, j), timeout=30)
                assert cache.get(key) == (i, j)
                cache.delete(key)
        except BaseException as exc:  # reported below, with the thread's values
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_replies_are_read_by_the_c_parser():
    """redis-py reads replies with hiredis when it is installed (requirements.txt): the cache's connections,
    as every other Redis client of the project, parse in C instead of Python."""
    from redis._parsers import _HiredisParser

    cache = _cache()
    cache.set("parsed", 1, timeout=30)
    try:
        pool = cache._cache.get_client(write=True).connection_pool
        connection = pool.get_connection()
        try:
            assert isinstance(connection._parser, _HiredisParser)
        finally:
            pool.release(connection)
        assert cache.get("parsed") == 1
    finally:
        cache.delete("parsed")
