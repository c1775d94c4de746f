"""Django's Redis cache, with one Redis client per connection pool instead of one per operation.

Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` around the pool on every cache
operation, and building one (its table of response callbacks) costs about twice what the round trip itself
costs the web process. A client holds no connection of its own (each command borrows one from the pool), so
one client per pool serves every operation, from any thread, as the per-operation ones did.

clientarea/settings.py names it as the cache backend whenever ``REDIS_URL`` is set (same ``LOCATION`` and
``OPTIONS`` as Django's).
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends import redis as django_redis


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        django_client: Any = self  # Django's private attributes, which the type stubs leave out
        index = django_client._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            # As Django's _get_connection_pool, for the index chosen here.
            pools = django_client._pools
            if index not in pools:
                pools[index] = django_client._pool_class.from_url(
                    django_client._servers[index], **django_client._pool_options
                )
            client = self._clients[index] = django_client._client(connection_pool=pools[index])
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
