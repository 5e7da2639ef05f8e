"""Sending pushes: FCM's message for an "answer ready" push, firebase-admin's batch send, and what each
FCM answer means for the push and its token. Without FCM credentials, a sender that only logs."""

from __future__ import annotations

import email.utils
import enum
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

import google.auth.exceptions
from firebase_admin import exceptions, messaging

from backend.firebase import configure_messaging

logger = logging.getLogger("surge.push")

DEFAULT_TITLE = "Your answer is ready"
DEFAULT_BODY = "Tap to read it."
READY_BODY = "Your answer is ready."
# FCM allows 4 KB per message; an excerpt is a teaser, the app fetches the answer itself.
EXCERPT_CHARS = 180


@dataclass(frozen=True, slots=True)
class Push:
    """One finished answer for one device, ready to hand to FCM."""

    delivery_id: UUID
    device_id: UUID
    platform: str
    # Never logged (DESIGN.md, Observability), like ``body`` when it carries answer text.
    token: str
    conversation_id: UUID
    message_id: UUID
    title: str
    body: str
    expires_at: datetime


class Outcome(enum.Enum):
    SENT = "sent"
    # FCM will never deliver to this token again: forget the device.
    DELETE_TOKEN = "delete_token"  # noqa: S105  (an outcome, not a secret)
    # Transient (5xx, quota, network): send again later.
    RETRY = "retry"
    # Our APNs/web push credentials or sender are wrong: raise the alert, keep the token, do not retry.
    AUTH_ERROR = "auth_error"
    # FCM rejected this message for good (not the token's fault): give up on it, keep the token.
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    # Low-cardinality label for metrics and the delivery row: ``sent``, ``logged`` or FCM's error code.
    code: str
    retry_after_s: float | None = None
    # Credentials trouble worth waking someone for, whatever happens to the push.
    alert: bool = False


class PushSender(Protocol):
    #: False when pushes are only logged (no FCM credentials).
    sends: bool

    async def send(self, pushes: Sequence[Push], *, now: datetime | None = None) -> list[SendResult]:
        """One result per push, in order; never raises for an FCM failure."""
        ...

    async def aclose(self) -> None: ...


def notification_text(title: str | None, answer: str | None, *, include_text: bool) -> tuple[str, str]:
    """The notification's title and body: the conversation's title, and the answer's start when opted in."""
    excerpt = " ".join((answer or "").split())
    if len(excerpt) > EXCERPT_CHARS:
        excerpt = excerpt[: EXCERPT_CHARS - 1].rstrip() + "…"
    if title:
        return title, excerpt if include_text and excerpt else READY_BODY
    return DEFAULT_TITLE, excerpt if include_text and excerpt else DEFAULT_BODY


def fcm_message(push: Push, *, now: datetime) -> messaging.Message:
    """The FCM v1 message: ids in ``data``, a visible notification, collapsing per conversation."""
    conversation = str(push.conversation_id)
    ttl = max(0, int((push.expires_at - now).total_seconds()))
    with warnings.catch_warnings():
        # firebase-admin 7.7 deprecates ``token`` in favour of ``fid`` (Firebase installation ids). Apps
        # register FCM registration tokens today, and FCM accepts an installation id as a ``token`` too.
        warnings.filterwarnings("ignore", "Message.token is deprecated", DeprecationWarning)
        return _message(push, conversation, ttl)


def _message(push: Push, conversation: str, ttl: int) -> messaging.Message:
    return messaging.Message(
        token=push.token,
        data={"type": "answer_ready", "conversation_id": conversation, "message_id": str(push.message_id)},
        notification=messaging.Notification(title=push.title, body=push.body),
        android=messaging.AndroidConfig(
            priority="high",
            collapse_key=conversation,
            ttl=timedelta(seconds=ttl),
            # A newer answer in the same conversation replaces the notification instead of stacking.
            notification=messaging.AndroidNotification(tag=conversation),
        ),
        apns=messaging.APNSConfig(
            headers={
                "apns-priority": "10",
                "apns-push-type": "alert",
                "apns-collapse-id": conversation,
                "apns-expiration": str(int(push.expires_at.timestamp())),
            },
            payload=messaging.APNSPayload(aps=messaging.Aps(sound="default", thread_id=conversation)),
        ),
        webpush=messaging.WebpushConfig(
            headers={"TTL": str(ttl), "Urgency": "high", "Topic": push.conversation_id.hex}
        ),
    )


def retry_after_s(error: Exception) -> float | None:
    """FCM's ``Retry-After`` (seconds or an HTTP date), if the failed response had one."""
    response = getattr(error, "http_response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_body(error: Exception) -> dict[str, Any]:
    response = getattr(error, "http_response", None)
    try:
        body = response.json() if response is not None else None
    except ValueError:
        return {}
    inner = body.get("error") if isinstance(body, dict) else None
    return inner if isinstance(inner, dict) else {}


def is_bad_token(error: Exception) -> bool:
    """Whether an INVALID_ARGUMENT is about the registration token rather than the message.

    FCM answers a malformed token with ``"The registration token is not a valid FCM registration token"``
    (or a field violation on ``message.token``); a bad payload names another field.
    """
    body = _error_body(error)
    fields = [
        violation.get("field", "")
        for detail in body.get("details", [])
        if isinstance(detail, dict)
        for violation in detail.get("fieldViolations", [])
        if isinstance(violation, dict)
    ]
    if fields:
        return "message.token" in fields
    return "registration token" in str(body.get("message", "")).lower()


def classify(error: Exception | None) -> SendResult:
    """What one FCM answer means for the push and its token."""
    if error is None:
        return SendResult(Outcome.SENT, "sent")
    wait = retry_after_s(error)
    if isinstance(error, messaging.UnregisteredError):
        return SendResult(Outcome.DELETE_TOKEN, "unregistered")
    if isinstance(error, exceptions.InvalidArgumentError):
        if is_bad_token(error):
            return SendResult(Outcome.DELETE_TOKEN, "invalid_token")
        return SendResult(Outcome.REJECTED, "invalid_argument")
    if isinstance(error, messaging.QuotaExceededError):
        return SendResult(Outcome.RETRY, "quota_exceeded", wait)
    if isinstance(error, messaging.ThirdPartyAuthError):
        return SendResult(Outcome.AUTH_ERROR, "third_party_auth_error", alert=True)
    if isinstance(error, messaging.SenderIdMismatchError):
        return SendResult(Outcome.AUTH_ERROR, "sender_id_mismatch", alert=True)
    if isinstance(error, exceptions.UnauthenticatedError | exceptions.PermissionDeniedError):
        return SendResult(Outcome.AUTH_ERROR, error.code.lower(), alert=True)
    if isinstance(
        error,
        exceptions.UnavailableError
        | exceptions.InternalError
        | exceptions.DeadlineExceededError
        | exceptions.ResourceExhaustedError
        | exceptions.UnknownError,
    ):
        return SendResult(Outcome.RETRY, error.code.lower(), wait)
    if isinstance(error, exceptions.FirebaseError):
        return SendResult(Outcome.REJECTED, str(error.code).lower())
    return SendResult(Outcome.RETRY, "unknown")


class FcmSender:
    """Sends with firebase-admin's async batch API, one HTTP request per message, each tried once."""

    sends = True

    def __init__(self, app: Any) -> None:
        self.app = app
        self._client = configure_messaging(app)

    async def send(self, pushes: Sequence[Push], *, now: datetime | None = None) -> list[SendResult]:
        if not pushes:
            return []
        stamp = now or datetime.now(UTC)
        messages = [fcm_message(push, now=stamp) for push in pushes]
        try:
            batch = await messaging.send_each_async(messages, app=self.app)
        except exceptions.FirebaseError as error:
            # The whole batch failed before reaching FCM, e.g. the access token could not be refreshed.
            cause = error.cause if isinstance(error.cause, Exception) else error
            logger.error("FCM batch failed", extra={"error": type(cause).__name__, "pushes": len(pushes)})
            alert = isinstance(cause, google.auth.exceptions.RefreshError)
            return [SendResult(Outcome.RETRY, "credentials" if alert else "unknown", alert=alert)] * len(
                pushes
            )
        return [classify(response.exception) for response in batch.responses]

    async def aclose(self) -> None:
        await self._client.aclose()


class LoggingSender:
    """No FCM credentials: say what would have been sent (ids only), and send nothing."""

    sends = False

    async def send(self, pushes: Sequence[Push], *, now: datetime | None = None) -> list[SendResult]:
        for push in pushes:
            logger.info(
                "push not sent (no FCM credentials)",
                extra={
                    "delivery_id": str(push.delivery_id),
                    "device_id": str(push.device_id),
                    "platform": push.platform,
                    "conversation_id": str(push.conversation_id),
                    "message_id": str(push.message_id),
                },
            )
        return [SendResult(Outcome.SENT, "logged")] * len(pushes)

    async def aclose(self) -> None:
        return None


def build_sender(firebase_app: Any, *, has_credentials: bool) -> PushSender:
    """FCM when credentials are configured, else the logging stand-in."""
    if firebase_app is not None and has_credentials:
        return FcmSender(firebase_app)
    return LoggingSender()
