"""A stand-in for FCM (HTTP v1) and Google's OAuth token endpoint, for ``make chaos``: Surge sends its
pushes here (``SURGE_FCM_SEND_URL``, and a service account whose ``token_uri`` points here), and the
harness can make it answer 503 for a while, as FCM does when it is unwell."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PROJECT = "surge-chaos"


class FakeFcm:
    def __init__(self) -> None:
        self.sent: list[str] = []  # registration tokens of the pushes it accepted
        self.refused = 0
        self.unavailable_until = 0.0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeFcm:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def send_url(self) -> str:
        return f"{self.url}/v1/projects/{PROJECT}/messages:send"

    def unavailable_for(self, seconds: float) -> None:
        self.unavailable_until = time.monotonic() + seconds

    def service_account(self, directory: Path) -> Path:
        """A service-account file whose token endpoint is this server (its key is made up for the run)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        path = directory / "fcm-service-account.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": PROJECT,
                    "private_key_id": "chaos",
                    "private_key": pem,
                    "client_email": f"chaos@{PROJECT}.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": f"{self.url}/token",
                }
            )
        )
        return path

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _reply(
                self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/token":
                    self._reply(
                        200, {"access_token": "chaos-token", "expires_in": 3600, "token_type": "Bearer"}
                    )
                    return
                if time.monotonic() < fake.unavailable_until:
                    with fake._lock:
                        fake.refused += 1
                    error = {
                        "code": 503,
                        "message": "The service is currently unavailable.",
                        "status": "UNAVAILABLE",
                    }
                    self._reply(503, {"error": error}, {"Retry-After": "1"})
                    return
                token = json.loads(body)["message"].get("token", "")
                with fake._lock:
                    fake.sent.append(token)
                self._reply(200, {"name": f"projects/{PROJECT}/messages/{len(fake.sent)}"})

        return Handler
