"""The replicas' Redis client: commands packed by hiredis, byte for byte what redis-py's own packing sends,
over whichever connection class the URL names."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from backend.redis_client import packed_by_hiredis, redis_client
from tests.services import REDIS_URL, redis_available, require

COMMANDS = [
    ("SET", "surge:turn:1", "délta ✓"),
    ("CONFIG GET", "maxmemory"),  # a command name of two words is sent as two arguments
    (b"CLIENT SETNAME", b"surge"),
    ("EVALSHA", "f" * 40, 0, 86400, 3600, -1, 2.5, b"\x00\xff raw", memoryview(b"viewed")),
    ("XADD", "k", "1-1", "d", b"x" * 20_000),  # beyond redis-py's buffer cutoff: sent in pieces there
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: str(command[0]))
def test_hiredis_packs_the_bytes_redis_py_packs(command: tuple) -> None:
    python = Connection()
    hiredis = packed_by_hiredis(Connection)()
    assert b"".join(hiredis.pack_command(*command)) == b"".join(python.pack_command(*command))


def test_the_url_still_chooses_the_connection_class() -> None:
    for url, base in [
        ("redis://127.0.0.1:6379/0", Connection),
        ("rediss://127.0.0.1:6380/0", SSLConnection),
        ("unix:///run/redis.sock", UnixDomainSocketConnection),
    ]:
        chosen = redis_client(url).connection_pool.connection_class
        assert issubclass(chosen, base) and chosen is not base, url


@pytest.mark.redis
async def test_a_script_with_hundreds_of_arguments_and_a_pipeline_round_trip() -> None:
    require("Redis", redis_available())
    client = redis_client(REDIS_URL)
    key = f"surge-test-{uuid.uuid4().hex[:8]}"
    values = [f"é{index}".encode() * (1 + index % 7) for index in range(400)]
    try:
        script = client.register_script("for i = 1, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end")
        await script(keys=[key], args=values)
        async with client.pipeline(transaction=True) as pipeline:
            pipeline.llen(key).lrange(key, 0, -1).expire(key, 60)
            length, stored, expiring = await pipeline.execute()
        assert (length, stored, expiring) == (400, values, True)
        connection = await client.connection_pool.get_connection()
        try:
            assert type(connection).__name__ == "HiredisConnection"
        finally:
            await client.connection_pool.release(connection)
    finally:
        await client.delete(key)
        await client.aclose()
