"""The OpenAPI document is the contract (API.md): schemathesis runs over ``/schema/openapi.json`` as a
signed-up user, every phase (the schema's examples, coverage of its edges and of undeclared methods,
fuzzing) and every check, and must report nothing: no 5xx, only documented status codes, bodies,
headers and SSE events as documented, invalid input refused, valid input accepted, 405 with ``Allow``.

Run as the ``schemathesis`` command, exactly as an operator would run it against a deployment, on a
fixed seed with few examples per operation, so a run takes seconds and a failure reproduces.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from backend.app import create_app
from backend.db.migrate import upgrade
from loadtests.sglang_sim import free_port
from tests.conftest import make_settings

MAX_EXAMPLES = 10
SEED = 20261204
# Erasing the account signs the caller out for good: fuzzed on its own, with an account per call.
OWN_ACCOUNT = "DELETE /v1/me"
# Valid by the schema yet refused by design, because validity depends on state no schema can know: an
# opaque cursor this server did not issue, a model not configured here, a message not in this
# conversation. Every other check still runs on these operations.
STATEFUL_VALIDITY = (
    "GET /v1/conversations",
    "GET /v1/conversations/{conversation_id}/messages",
    "POST /v1/conversations",
    "PATCH /v1/conversations/{conversation_id}",
    "POST /v1/conversations/{conversation_id}/messages",
    "POST /v1/messages/{message_id}/regenerate",
)
CONFIG = f"""
[generation]
# U+0000 is refused in every string (backend/request_guard.py), a documented 400.
allow-x00 = false
deterministic = true
max-examples = {MAX_EXAMPLES}
{
    "".join(
        f'''
[[operations]]
include-name = "{name}"
checks.positive_data_acceptance.enabled = false
'''
        for name in STATEFUL_VALIDITY
    )
}
"""


@dataclass
class Server:
    base_url: str
    _counter: Iterator[int] = field(default_factory=lambda: iter(range(1_000_000)))

    def sign_up(self) -> dict[str, str]:
        response = httpx.post(
            f"{self.base_url}/v1/auth/signup",
            json={"email": f"fuzz{next(self._counter)}@example.com", "password": "correct horse"},
        )
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def server(tmp_path: Path, fleet: list[str]) -> Iterator[Server]:
    """The app on SQLite behind uvicorn in a thread of its own (the fuzzer calls it synchronously)."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'contract.sqlite3'}"
    upgrade(database)
    # Every call of DELETE /v1/me signs up an account, all from one address: no sign-up limit here.
    settings = make_settings(database, tmp_path, workers=fleet, SURGE_SIGNUP_PER_IP_PER_HOUR="1000000")
    port = free_port()
    runner = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, lifespan="on", log_config=None)
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not runner.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.02)
    try:
        yield Server(f"http://127.0.0.1:{port}")
    finally:
        runner.should_exit = True
        thread.join(timeout=30)


@pytest.mark.slow
def test_schemathesis_finds_nothing(server: Server, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    (header,) = server.sign_up().items()
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run"),
        f"{server.base_url}/schema/openapi.json",
        *("--header", f"{header[0]}: {header[1]}"),
        *("--exclude-name", OWN_ACCOUNT, "--seed", str(SEED), "--workers", "1", "--no-color"),
    ]
    # In tmp_path: schemathesis keeps a cache directory where it runs.
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]


@pytest.mark.slow
def test_erasing_the_account_honours_the_schema(server: Server) -> None:
    schema = schemathesis.openapi.from_url(
        f"{server.base_url}/schema/openapi.json",
        config=SchemathesisConfig.from_dict({"seed": SEED, "generation": {"allow-x00": False}}),
    )
    operation = schema[OWN_ACCOUNT.split()[1]][OWN_ACCOUNT.split()[0]]
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def erase(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=server.base_url, headers=server.sign_up())

        erase()
