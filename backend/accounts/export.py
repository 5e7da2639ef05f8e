"""``GET /v1/me/export``: everything an account owns, as one machine-readable document (GDPR art. 20)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.conversations.schemas import conversation_view, message_view
from backend.db import models as m

FORMAT_VERSION = 1


async def export_account(session: AsyncSession, user: m.User) -> bytes:
    """The document, written as one literal that reads top to bottom like the format it produces
    (which is why this function is longer than most: split up, the format would be scattered)."""
    conversations = list(
        await session.scalars(
            select(m.Conversation).where(m.Conversation.user_id == user.id).order_by(m.Conversation.id)
        )
    )
    messages = await session.scalars(
        select(m.Message)
        .join(m.Conversation, m.Conversation.id == m.Message.conversation_id)
        .where(m.Conversation.user_id == user.id)
        .order_by(m.Message.conversation_id, m.Message.id)
    )
    by_conversation: dict[Any, list[dict[str, Any]]] = {}
    for message in messages:
        entry = msgspec.to_builtins(message_view(message))
        entry["feedback_comment"] = message.feedback_comment
        by_conversation.setdefault(message.conversation_id, []).append(entry)
    shares = await session.scalars(select(m.Share).where(m.Share.user_id == user.id).order_by(m.Share.id))
    logins = await session.scalars(
        select(m.TokenFamily).where(m.TokenFamily.user_id == user.id).order_by(m.TokenFamily.id)
    )
    devices = await session.scalars(select(m.Device).where(m.Device.user_id == user.id).order_by(m.Device.id))
    document = {
        "format_version": FORMAT_VERSION,
        "exported_at": datetime.now(UTC),
        "user": {
            "id": user.id,
            "email": user.email,
            "display_name": user.display_name,
            "tier": user.tier,
            "created_at": user.created_at,
            "firebase_uid": user.firebase_uid,
        },
        "conversations": [
            {**msgspec.to_builtins(conversation_view(item)), "messages": by_conversation.get(item.id, [])}
            for item in conversations
        ],
        "shares": [
            {
                "id": share.id,
                "conversation_id": share.conversation_id,
                "title": share.title,
                "messages": share.messages,
                "created_at": share.created_at,
            }
            for share in shares
        ],
        # Logins without any token material: when each began, was last used, was revoked.
        "logins": [
            {
                "id": family.id,
                "created_at": family.created_at,
                "last_used_at": family.last_used_at,
                "revoked_at": family.revoked_at,
            }
            for family in logins
        ],
        # Devices that get push notifications, without their push tokens.
        "devices": [
            {
                "id": device.id,
                "platform": device.platform,
                "app_version": device.app_version,
                "locale": device.locale,
                "created_at": device.created_at,
                "last_seen_at": device.last_seen_at,
            }
            for device in devices
        ],
    }
    return msgspec.json.encode(document)
