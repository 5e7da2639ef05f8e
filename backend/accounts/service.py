"""Account logic without HTTP: sign-up, login, refresh-token rotation, profile, export and erasure."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.firebase import FirebaseAuth, FirebaseIdentity
from backend.accounts.passwords import Passwords
from backend.accounts.schemas import EMAIL_CORE, EMAIL_SPACE
from backend.accounts.tokens import AccessTokens, hash_refresh_token, new_refresh_token
from backend.db import models as m
from backend.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from backend.settings import AuthSettings

_EMAIL = re.compile(EMAIL_CORE)


def normalise_email(email: str) -> str:
    """Emails are unique regardless of case: ``Ada@Example.com`` and ``ada@example.com`` are one account."""
    normalised = email.strip(EMAIL_SPACE).lower()
    if not _EMAIL.fullmatch(normalised):
        raise ValidationFailed("Not a valid email address.", fields={"email": "not a valid email address"})
    return normalised


EMAIL_TAKEN = (
    "An account with this email already exists: log in to it with its password. "
    "Firebase sign-in links accounts by Firebase uid, never by email."
)


def _usable_email(identity: FirebaseIdentity) -> str | None:
    """The token's verified email, normalised; Apple's private relay addresses are kept as they are
    (they are real, forwarding addresses)."""
    if identity.email is None:
        return None
    try:
        return normalise_email(identity.email)
    except ValidationFailed:
        return None


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    user: m.User
    access_token: str
    refresh_token: str
    expires_in: int


class UserRepository(SQLAlchemyAsyncRepository[m.User]):
    model_type = m.User


class AccountService:
    """One request's view of accounts; commits its own writes before returning."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        settings: AuthSettings,
        passwords: Passwords,
        access_tokens: AccessTokens,
        firebase: FirebaseAuth | None = None,
    ) -> None:
        self.session = session
        self.users = UserRepository(session=session, auto_refresh=False)
        self.settings = settings
        self.passwords = passwords
        self.access_tokens = access_tokens
        self.firebase = firebase

    async def sign_up(self, email: str, password: str, display_name: str | None) -> IssuedTokens:
        email = normalise_email(email)
        if len(password) < self.settings.password_min_chars:
            raise ValidationFailed(
                "Password too short.",
                fields={"password": f"at least {self.settings.password_min_chars} characters"},
            )
        if await self.users.exists(email=email):
            raise Conflict("An account with this email already exists.")
        user = m.User(
            email=email, password_hash=await self.passwords.hash(password), display_name=display_name
        )
        self.session.add(user)
        try:
            await self.session.flush()
        except IntegrityError as exc:  # two sign-ups for one email racing
            await self.session.rollback()
            raise Conflict("An account with this email already exists.") from exc
        return await self._start_login(user)

    async def log_in(self, email: str, password: str) -> IssuedTokens:
        user = await self.users.get_one_or_none(email=email.strip(EMAIL_SPACE).lower())
        # Unknown email and wrong password take the same path and the same time (a decoy hash).
        if not await self.passwords.verify(user.password_hash if user else None, password) or user is None:
            raise Unauthorized("Wrong email or password.")
        return await self._start_login(user)

    async def sign_in_with_firebase(
        self, id_token: str, *, before_create: Callable[[], Awaitable[None]] | None = None
    ) -> tuple[IssuedTokens, bool]:
        """Log in as the account linked to the token's Firebase uid, creating it on the uid's first sign-in.

        Accounts are linked by uid only. A new account takes the token's email when Firebase verified it.
        If a password account has that email, nothing is created (409): its owner logs in with the
        password, and a Firebase identity never takes it over. If another Firebase identity's account has
        it, the new account goes without the email. ``before_create`` may refuse a new account (sign-ups
        paused) while letting existing ones in.
        """
        if self.firebase is None:
            raise NotFound("Firebase sign-in is not enabled on this server.")
        identity = await self.firebase.verify(id_token)
        user = await self.users.get_one_or_none(firebase_uid=identity.uid)
        if user is not None:
            return await self._start_login(user), False
        if before_create is not None:
            await before_create()
        email = _usable_email(identity)
        holder = await self.users.get_one_or_none(email=email) if email is not None else None
        if holder is not None:
            if holder.password_hash is not None:
                raise Conflict(EMAIL_TAKEN)
            # Another Firebase identity has it (say, Google before Apple, or a deleted Firebase user):
            # a new account without the email, rather than a dead end.
            email = None
        user = m.User(email=email, firebase_uid=identity.uid, display_name=identity.display_name)
        self.session.add(user)
        try:
            await self.session.flush()
        except IntegrityError as exc:  # the same uid (or email) signing in twice at once
            await self.session.rollback()
            user = await self.users.get_one_or_none(firebase_uid=identity.uid)
            if user is None:
                raise Conflict(EMAIL_TAKEN) from exc
            return await self._start_login(user), False
        return await self._start_login(user), True

    async def _start_login(self, user: m.User) -> IssuedTokens:
        family = m.TokenFamily(user_id=user.id)
        self.session.add(family)
        await self.session.flush()
        return await self._issue(user, family)

    async def _issue(self, user: m.User, family: m.TokenFamily) -> IssuedTokens:
        now = datetime.now(UTC)
        raw = new_refresh_token()
        self.session.add(
            m.RefreshToken(
                family_id=family.id,
                token_hash=hash_refresh_token(raw),
                expires_at=now + timedelta(seconds=self.settings.refresh_token_ttl_s),
            )
        )
        family.last_used_at = now
        await self.session.commit()
        return IssuedTokens(
            user=user,
            access_token=self.access_tokens.issue(user.id, now=now),
            refresh_token=raw,
            expires_in=int(self.access_tokens.ttl.total_seconds()),
        )

    async def family_of(self, refresh_token: str) -> UUID | None:
        """The login a refresh token belongs to (for its rate limit), without judging the token."""
        return await self.session.scalar(
            select(m.RefreshToken.family_id).where(
                m.RefreshToken.token_hash == hash_refresh_token(refresh_token)
            )
        )

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        """Exchange a refresh token for a new pair; a spent token presented again revokes its login."""
        now = datetime.now(UTC)
        row = (
            await self.session.execute(
                select(m.RefreshToken, m.TokenFamily, m.User)
                .join(m.TokenFamily, m.TokenFamily.id == m.RefreshToken.family_id)
                .join(m.User, m.User.id == m.TokenFamily.user_id)
                .where(m.RefreshToken.token_hash == hash_refresh_token(refresh_token))
            )
        ).one_or_none()
        if row is None:
            raise Unauthorized("Invalid refresh token.")
        token, family, user = row
        if family.revoked_at is not None or token.expires_at <= now:
            raise Unauthorized("Refresh token expired or revoked.")
        # Spend the token with a conditional update, so two concurrent refreshes cannot both succeed.
        spent = await self.session.execute(
            update(m.RefreshToken)
            .where(m.RefreshToken.id == token.id, m.RefreshToken.spent_at.is_(None))
            .values(spent_at=now)
        )
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            # Reuse: someone holds a copy of a token that was already exchanged. End the whole login.
            family.revoked_at = now
            await self.session.commit()
            raise Unauthorized("Refresh token reused; this login has been revoked.")
        return await self._issue(user, family)

    async def log_out(self, user: m.User, refresh_token: str) -> None:
        """Revoke the login the token belongs to; a token of another account is ignored, not revealed."""
        family_id = await self.family_of(refresh_token)
        if family_id is not None:
            await self.session.execute(
                update(m.TokenFamily)
                .where(m.TokenFamily.id == family_id, m.TokenFamily.user_id == user.id)
                .values(revoked_at=datetime.now(UTC))
            )
            await self.session.commit()

    async def update_profile(self, user_id: UUID, changes: dict[str, Any]) -> m.User:
        user = await self.users.get(user_id)
        if "display_name" in changes:
            user.display_name = changes["display_name"]
        await self.session.commit()
        return user

    async def delete_account(self, user_id: UUID) -> None:
        """Erase the account; foreign keys cascade to everything it owns, in one transaction."""
        await self.users.delete(user_id)
        await self.session.commit()
