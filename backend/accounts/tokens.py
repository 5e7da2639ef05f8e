"""Access tokens (short-lived JWTs) and refresh tokens (opaque, stored as SHA-256 hashes)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt

from backend.settings import AuthSettings

ALGORITHM = "HS256"
ISSUER = "surge"


def new_refresh_token() -> str:
    # 256 bits of randomness; the client keeps it, the database keeps only its hash.
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccessTokens:
    """Signs and checks the bearer tokens every authenticated request carries."""

    def __init__(self, settings: AuthSettings) -> None:
        self._secret = settings.jwt_secret
        self.ttl = timedelta(seconds=settings.access_token_ttl_s)

    def issue(self, user_id: UUID, *, now: datetime | None = None) -> str:
        issued = now or datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "iss": ISSUER,
            "iat": int(issued.timestamp()),
            "exp": int((issued + self.ttl).timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> tuple[UUID, datetime] | None:
        """The user a valid, unexpired token was issued to and when it expires; None for anything else."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "sub"]},
            )
            return UUID(claims["sub"]), datetime.fromtimestamp(claims["exp"], UTC)
        except (jwt.PyJWTError, ValueError, KeyError, TypeError):
            return None

    def user_id(self, token: str) -> UUID | None:
        verified = self.verify(token)
        return verified[0] if verified else None
