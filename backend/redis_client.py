"""The Redis client every replica shares its state through: pooled, self-healing, and packing commands in C.

redis-py's asyncio connections pack each command in Python, joining the growing buffer once per argument.
The event log's publication carries every event of a coalescing window in one script call, hundreds of
arguments: packing them was most of the publication's CPU in a token-relay profile. redis-py's own
``HiredisRespSerializer`` (what its synchronous client uses when hiredis is installed, as it is here:
``redis[hiredis]``) packs the same bytes in one C call.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.connection import HiredisRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.utils import HIREDIS_AVAILABLE


def redis_client(url: str) -> aioredis.Redis:
    """A pooled client that recovers by itself when Redis restarts: a command that meets a dead pooled
    connection is retried on a fresh one (a few times, backing off), and a connection idle for a while is
    checked before use. Timeouts bound every wait (the event log's blocking read lasts 100 ms)."""
    client = aioredis.Redis.from_url(
        url,
        max_connections=200,
        socket_connect_timeout=1.0,
        socket_timeout=5.0,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    if HIREDIS_AVAILABLE:
        # The URL chose the connection class (TCP, TLS or a Unix socket); keep it, packing in C.
        pool = client.connection_pool
        pool.connection_class = packed_by_hiredis(pool.connection_class)
    return client


class _HiredisPacking:
    _serializer = HiredisRespSerializer()

    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = self._serializer.pack(*args)
        return packed


def packed_by_hiredis(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """``base`` packing its commands with hiredis (pipelines too: they pack each command with it)."""
    return type(f"Hiredis{base.__name__}", (_HiredisPacking, base), {})
