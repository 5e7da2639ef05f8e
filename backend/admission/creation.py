"""How fast one user may create conversations and register devices: each is a row kept until deleted,
so a script looping on either would grow the database without bound. Counted in the shared limiter
(Redis when configured), like the turn limits."""

from __future__ import annotations

from uuid import UUID

from backend.admission.ratelimit import RateLimit, RateLimiter, enforce
from backend.settings import AdmissionSettings


class CreationLimits:
    def __init__(self, limiter: RateLimiter, settings: AdmissionSettings) -> None:
        self.limiter = limiter
        self.conversations = RateLimit("conversations_user", settings.conversations_per_user_per_min, 60)
        self.devices = RateLimit("devices_user", settings.devices_per_user_per_min, 60)

    async def conversation(self, user_id: UUID) -> None:
        """Count a conversation about to be created; ``429 rate_limited`` past the limit."""
        await enforce(self.limiter, self.conversations, str(user_id))

    async def device(self, user_id: UUID) -> None:
        """Count a device registration (new or refreshed); ``429 rate_limited`` past the limit."""
        await enforce(self.limiter, self.devices, str(user_id))
