"""API key secrets: how one is made, shown and hashed.

A secret carries 256 random bits, so a fast keyed hash is enough to store it (argon2 would add tens of
milliseconds to every request for nothing: nobody can guess such a secret). The HMAC's key is a server
secret, so a leaked table cannot even be checked against candidate secrets offline.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "sk-surge-"  # noqa: S105 (a label, not a secret)
# Characters of the secret kept in clear (the prefix and a few random ones) to tell keys apart in a list.
SHOWN_CHARS = len(SECRET_PREFIX) + 6


class KeyHasher:
    def __init__(self, server_secret: str) -> None:
        self._key = server_secret.encode()

    def new_secret(self) -> str:
        return SECRET_PREFIX + secrets.token_urlsafe(32)

    def hash(self, secret: str) -> str:
        return hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()


def shown_prefix(secret: str) -> str:
    return secret[:SHOWN_CHARS]


def looks_like_key(token: str) -> bool:
    return token.startswith(SECRET_PREFIX)
