"""The conversations domain's Litestar provider: the conversation service of a request."""

from __future__ import annotations

from litestar.di import NamedDependency, Provide

from backend.conversations.service import ConversationService
from backend.deps import DbSession, SettingsDep


def provide_conversation_service(db_session: DbSession, settings: SettingsDep) -> ConversationService:
    return ConversationService(db_session, settings.inference)


def conversation_providers() -> dict[str, Provide]:
    return {"conversations": Provide(provide_conversation_service, sync_to_thread=False)}


Conversations = NamedDependency[ConversationService]
