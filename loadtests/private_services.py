"""A PostgreSQL server and a Redis server of one run's own, in a temporary directory.

``make chaos`` stops and restarts its database and Redis mid-run. Doing that to the machine's shared
servers would break whatever else uses them (the test suite, another benchmark), so the harness starts
servers of its own on free ports, from the same installed binaries, and removes them afterwards.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import tempfile
from pathlib import Path

from loadtests.sglang_sim import free_port


def _postgres_bin(program: str) -> str:
    """``program`` from PostgreSQL's server binaries (Debian keeps them off the PATH)."""
    if found := shutil.which(program):
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{program}"), key=lambda path: int(Path(path).parts[4])
    )
    if not candidates:
        raise RuntimeError(f"{program} not found: install PostgreSQL's server package")
    return candidates[-1]


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the system's ``postgres`` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


async def _run(command: list[str]) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}: {output.decode()[-1500:]}")


class PrivatePostgres:
    """A throwaway cluster (trust authentication, listening on 127.0.0.1 only) that can be restarted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="surge-pg-"))
        self.data = self.directory / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    async def create(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        await _run(_as_postgres_user([
            _postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync",
        ]))  # fmt: skip
        await self.start()

    async def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c max_connections=200"
        await _run(_as_postgres_user([
            _postgres_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.directory / "log"),
            "-w", "start",
        ]))  # fmt: skip

    async def stop(self) -> None:
        """A fast shutdown, as ``pg_ctlcluster stop`` (an operator's restart) does: sessions are cut."""
        await _run(
            _as_postgres_user([_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        )

    async def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            await self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class PrivateRedis:
    """A Redis server that keeps nothing on disk (as the machine's), which can be shut down and restarted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
            "--save", "", "--appendonly", "no",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            if await self._answers():
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not come up")

    async def stop(self) -> None:
        """Shut down losing everything (SIGTERM; it keeps nothing on disk), as a restart does."""
        if self.process is not None:
            self.process.terminate()
            await self.process.wait()
            self.process = None

    async def _answers(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.write(b"PING\r\n")
        reply = await reader.readline()
        writer.close()
        return reply.startswith(b"+PONG")
