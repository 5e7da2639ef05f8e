"""The sign-in routes' rate limits: per client IP (generous: carrier-grade NAT puts thousands of phones
behind one address) and per email or login (strict: guessing one account's password from many IPs must
still be slow).

Logins are limited three ways. Per client IP, generously. Per email *and* client IP, tightly: guessing a
password from one address stops after a few tries. Per email alone, loosely: guessing from many addresses
is still slow, yet a stranger's wrong passwords from one address no longer lock the owner out of their
own account (the owner, from another address, has a bucket of their own).
"""

from __future__ import annotations

from uuid import UUID

from backend.accounts.service import normalise_email
from backend.admission.ratelimit import RateLimit, RateLimiter, enforce
from backend.settings import AuthSettings, FirebaseSettings


class AuthRateLimits:
    def __init__(self, limiter: RateLimiter, auth: AuthSettings, firebase: FirebaseSettings) -> None:
        self.limiter = limiter
        self.signup_ip = RateLimit("signup_ip", auth.signup_per_ip_per_hour, 3600)
        self.login_ip = RateLimit("login_ip", auth.login_per_ip_per_10min, 600)
        self.login_email_ip = RateLimit("login_email_ip", auth.login_per_email_ip_per_10min, 600)
        self.login_email = RateLimit("login_email", auth.login_per_email_per_10min, 600)
        self.firebase_ip = RateLimit("firebase_ip", firebase.signin_per_ip_per_10min, 600)
        self.refresh_family = RateLimit("refresh_family", auth.refresh_per_family_per_10min, 600)

    async def signup(self, ip: str) -> None:
        await enforce(self.limiter, self.signup_ip, ip)

    async def login(self, ip: str, email: str) -> None:
        email = normalise_email(email)
        await enforce(
            self.limiter, self.login_ip, ip, (self.login_email_ip, f"{email}|{ip}"), (self.login_email, email)
        )

    async def firebase(self, ip: str) -> None:
        await enforce(self.limiter, self.firebase_ip, ip)

    async def refresh(self, family_id: UUID) -> None:
        await enforce(self.limiter, self.refresh_family, str(family_id))
