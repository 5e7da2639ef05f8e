"""The conversations domain's Litestar providers: the conversation service of a request, and what fills
in streaming answers (the chat domain, plugged in by the composition root)."""

from __future__ import annotations

from litestar.di import NamedDependency, Provide

from backend.conversations.service import ConversationService, LiveAnswers
from backend.deps import DbSession, SettingsDep, singleton


def provide_conversation_service(
    db_session: DbSession, settings: SettingsDep, live_answers: NamedDependency[LiveAnswers]
) -> ConversationService:
    return ConversationService(db_session, settings.inference, live_answers)


def conversation_providers(*, live_answers: LiveAnswers) -> dict[str, Provide]:
    return {
        "conversations": Provide(provide_conversation_service, sync_to_thread=False),
        "live_answers": singleton(live_answers),
    }


Conversations = NamedDependency[ConversationService]
