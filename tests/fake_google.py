"""A local stand-in for the Google endpoints firebase-admin talks to, so no test ever calls Google.

One threaded HTTP server on 127.0.0.1 answers as Google does:

- ``POST /v1/projects/{project}/messages:send``: FCM HTTP v1, with the error bodies FCM sends (status,
  ``google.firebase.fcm.v1.FcmError`` details, ``Retry-After``), scripted per registration token;
- ``POST /token``: Google's OAuth2 token endpoint for the service account in :meth:`service_account`,
  checking the signed JWT assertion firebase-admin's credentials send;
- ``GET /robot/v1/metadata/x509/securetoken@system.gserviceaccount.com``: the X.509 certificates Firebase
  ID tokens are checked against; :meth:`id_token` signs tokens with the matching private key.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CERTS_PATH = "/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"

# What FCM answers, by the name tests use: (HTTP status, google.rpc status, message, details).
FCM_ANSWERS: dict[str, tuple[int, str, str, list[dict[str, Any]]]] = {
    "UNREGISTERED": (
        404,
        "NOT_FOUND",
        "Requested entity was not found.",
        [{"@type": FCM_ERROR, "errorCode": "UNREGISTERED"}],
    ),
    # A malformed registration token.
    "INVALID_ARGUMENT": (
        400,
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
        [{"@type": FCM_ERROR, "errorCode": "INVALID_ARGUMENT"}],
    ),
    # A message FCM cannot accept, whoever it is for.
    "INVALID_PAYLOAD": (
        400,
        "INVALID_ARGUMENT",
        "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
        [
            {
                "@type": BAD_REQUEST,
                "fieldViolations": [
                    {
                        "field": "message.data[0].value",
                        "description": "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
                    }
                ],
            }
        ],
    ),
    "QUOTA_EXCEEDED": (
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'.",
        [{"@type": FCM_ERROR, "errorCode": "QUOTA_EXCEEDED"}],
    ),
    "UNAVAILABLE": (
        503,
        "UNAVAILABLE",
        "The service is currently unavailable.",
        [{"@type": FCM_ERROR, "errorCode": "UNAVAILABLE"}],
    ),
    "INTERNAL": (
        500,
        "INTERNAL",
        "Internal error encountered.",
        [{"@type": FCM_ERROR, "errorCode": "INTERNAL"}],
    ),
    "THIRD_PARTY_AUTH_ERROR": (
        401,
        "UNAUTHENTICATED",
        "Auth error from APNS or Web Push Service",
        [{"@type": FCM_ERROR, "errorCode": "THIRD_PARTY_AUTH_ERROR"}],
    ),
    "SENDER_ID_MISMATCH": (
        403,
        "PERMISSION_DENIED",
        "SenderId mismatch",
        [{"@type": FCM_ERROR, "errorCode": "SENDER_ID_MISMATCH"}],
    ),
}


@cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """A 2048-bit key per name, generated once per test process."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@cache
def certificate_pem(name: str) -> str:
    """A self-signed certificate for ``rsa_key(name)``, like the ones Google publishes for ID tokens."""
    key = rsa_key(name)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.system.gserviceaccount.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Server(ThreadingHTTPServer):
    # firebase-admin opens a connection per message of a batch at once; the default backlog is 5.
    request_queue_size = 128


@dataclass
class FcmRequest:
    """One message FCM received, and what it answered."""

    token: str
    message: dict[str, Any]
    authorization: str
    answer: str


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    scripted: dict[str, deque[tuple[str, int | None]]] = field(default_factory=dict)
    sends: list[FcmRequest] = field(default_factory=list)
    access_tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    certificate_fetches: int = 0


class FakeGoogle:
    """Start with :meth:`start`, stop with :meth:`close`; see the module docstring for the endpoints."""

    def __init__(self, project_id: str = "surge-test") -> None:
        self.project_id = project_id
        self.state = _State()
        self.kid = "surge-test-key-1"
        self._counter = itertools.count(1)
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-google", daemon=True)

    # --- lifecycle and addresses ---

    def start(self) -> FakeGoogle:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def fcm_send_url(self) -> str:
        return f"{self.base_url}/v1/projects/{self.project_id}/messages:send"

    @property
    def certs_url(self) -> str:
        return self.base_url + CERTS_PATH

    # --- FCM ---

    def answer(self, token: str, *answers: str, retry_after: int | None = None) -> None:
        """FCM answers the next sends to ``token`` with ``answers`` (keys of FCM_ANSWERS), then succeeds."""
        with self.state.lock:
            queue = self.state.scripted.setdefault(token, deque())
            queue.extend((answer, retry_after) for answer in answers)

    def sends_to(self, token: str) -> list[FcmRequest]:
        with self.state.lock:
            return [send for send in self.state.sends if send.token == token]

    @property
    def sends(self) -> list[FcmRequest]:
        with self.state.lock:
            return list(self.state.sends)

    # --- OAuth2 service account ---

    def service_account(self, directory: Path) -> Path:
        """A service-account JSON file whose token endpoint is this fake (what SURGE_FCM_CREDENTIALS_FILE names)."""
        path = directory / "fcm-service-account.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": self.project_id,
                    "private_key_id": "fake-service-account-key",
                    "private_key": private_pem(rsa_key("service-account")),
                    "client_email": f"firebase-adminsdk@{self.project_id}.iam.gserviceaccount.com",
                    "client_id": "1234567890",
                    "token_uri": f"{self.base_url}/token",
                }
            )
        )
        return path

    # --- Firebase ID tokens ---

    def id_token(
        self,
        uid: str,
        *,
        email: str | None = None,
        email_verified: bool = True,
        name: str | None = None,
        provider: str = "google.com",
        audience: str | None = None,
        issuer: str | None = None,
        issued_ago_s: int = 5,
        lifetime_s: int = 3600,
        key: str = "id-token",
        kid: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """An ID token as Firebase Auth issues them, signed with this fake's key (or ``key``)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer or f"https://securetoken.google.com/{self.project_id}",
            "aud": audience or self.project_id,
            "auth_time": now - issued_ago_s,
            "user_id": uid,
            "sub": uid,
            "iat": now - issued_ago_s,
            "exp": now - issued_ago_s + lifetime_s,
            "firebase": {"identities": {}, "sign_in_provider": provider},
        }
        if email is not None:
            claims["email"] = email
            claims["email_verified"] = email_verified
        if name is not None:
            claims["name"] = name
        claims.update(extra or {})
        return jwt.encode(claims, rsa_key(key), algorithm="RS256", headers={"kid": kid or self.kid})

    def unsigned_id_token(self, uid: str, **claims: Any) -> str:
        """The same claims with ``alg: none`` and no signature."""
        signed = self.id_token(uid, **claims)
        payload = jwt.decode(signed, options={"verify_signature": False})
        header = b64url(json.dumps({"alg": "none", "kid": self.kid, "typ": "JWT"}).encode())
        return f"{header}.{b64url(json.dumps(payload).encode())}."

    # --- the HTTP side ---

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                if self.path != CERTS_PATH:
                    self._reply(404, {"error": "not found"})
                    return
                with fake.state.lock:
                    fake.state.certificate_fetches += 1
                self._reply(
                    200,
                    {fake.kid: certificate_pem("id-token")},
                    {"Cache-Control": "public, max-age=21600, must-revalidate, no-transform"},
                )

            def do_POST(self) -> None:
                if self.path == "/token":
                    self._token()
                elif self.path == f"/v1/projects/{fake.project_id}/messages:send":
                    self._send()
                else:
                    self._reply(404, {"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}})

            def _token(self) -> None:
                form = parse_qs(self._body().decode())
                assertion = form.get("assertion", [""])[0]
                try:
                    jwt.decode(
                        assertion,
                        rsa_key("service-account").public_key(),
                        algorithms=["RS256"],
                        # google-auth names Google's token endpoint as the audience wherever it posts.
                        audience="https://oauth2.googleapis.com/token",
                    )
                except jwt.PyJWTError:
                    self._reply(
                        400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
                    )
                    return
                access_token = f"ya29.fake-{next(fake._counter)}"
                with fake.state.lock:
                    fake.state.token_requests += 1
                    fake.state.access_tokens.add(access_token)
                self._reply(200, {"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"})

            def _send(self) -> None:
                authorization = self.headers.get("Authorization", "")
                body = json.loads(self._body() or b"{}")
                message = body.get("message", {})
                token = message.get("token", "")
                with fake.state.lock:
                    authorised = authorization.removeprefix("Bearer ") in fake.state.access_tokens
                    queue = fake.state.scripted.get(token)
                    answer, retry_after = queue.popleft() if authorised and queue else ("OK", None)
                    if not authorised:
                        answer = "UNAUTHENTICATED"
                    fake.state.sends.append(FcmRequest(token, message, authorization, answer))
                if answer == "UNAUTHENTICATED":
                    self._reply(
                        401,
                        {
                            "error": {
                                "code": 401,
                                "message": "Request had invalid authentication credentials.",
                                "status": "UNAUTHENTICATED",
                            }
                        },
                    )
                    return
                if answer == "OK":
                    name = f"projects/{fake.project_id}/messages/0:{next(fake._counter)}%fake"
                    self._reply(200, {"name": name})
                    return
                status, rpc_status, text, details = FCM_ANSWERS[answer]
                headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
                self._reply(
                    status,
                    {"error": {"code": status, "message": text, "status": rpc_status, "details": details}},
                    headers,
                )

        return Handler
