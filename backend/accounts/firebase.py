"""Checking Firebase Auth ID tokens (Google, Apple or phone sign-in on the device) with firebase-admin."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from firebase_admin import auth, exceptions

from backend.errors import Unauthorized, UpstreamUnavailable

logger = logging.getLogger("surge.accounts")

DISPLAY_NAME_CHARS = 100


@dataclass(frozen=True, slots=True)
class FirebaseIdentity:
    """Who a verified ID token speaks for."""

    uid: str
    # Only an address Firebase marks verified (Apple's private relay addresses are: they forward mail);
    # None for phone sign-in and for unverified addresses.
    email: str | None
    display_name: str | None
    # google.com, apple.com, phone, password, ...
    provider: str | None


class FirebaseAuth:
    """Verifies ID tokens of one Firebase project: signature (Google's keys), audience, issuer, expiry."""

    def __init__(self, app: Any, *, clock_skew_s: int = 5) -> None:
        self.app = app
        self.clock_skew_s = clock_skew_s

    async def verify(self, id_token: str) -> FirebaseIdentity:
        """The identity behind a valid token; ``401 unauthorized`` for any other."""
        check = partial(
            auth.verify_id_token,
            id_token,
            app=self.app,
            # Revocation would cost a call to Google per sign-in; the token is exchanged once, at once.
            check_revoked=False,
            clock_skew_seconds=self.clock_skew_s,
        )
        try:
            # firebase-admin checks synchronously and may fetch Google's certificates (cached after).
            claims: dict[str, Any] = await asyncio.to_thread(check)
        except auth.CertificateFetchError as error:
            logger.warning(
                "cannot fetch Firebase ID token certificates", extra={"error": type(error).__name__}
            )
            raise UpstreamUnavailable("Cannot check Firebase ID tokens right now; retry later.") from error
        except (ValueError, exceptions.FirebaseError) as error:
            # Never the token, nor firebase-admin's message (it quotes the token's claims).
            logger.info("Firebase ID token refused", extra={"reason": type(error).__name__})
            raise Unauthorized("Invalid or expired Firebase ID token.") from error
        return identity_of(claims)


def identity_of(claims: dict[str, Any]) -> FirebaseIdentity:
    email = claims.get("email")
    name = claims.get("name")
    firebase = claims.get("firebase")
    provider = firebase.get("sign_in_provider") if isinstance(firebase, dict) else None
    return FirebaseIdentity(
        uid=str(claims["uid"]),
        email=email if isinstance(email, str) and email and claims.get("email_verified") is True else None,
        display_name=(name.strip()[:DISPLAY_NAME_CHARS] or None) if isinstance(name, str) else None,
        provider=provider if isinstance(provider, str) else None,
    )
