"""On PostgreSQL, ``?q=`` search is served by indexes: the user's conversations through the listing
index, message text through the conversation index or the trigram index, whichever the planner finds
cheaper for that user's data; never by reading every message in the database."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Select, select, text
from sqlalchemy.dialects import postgresql

from backend.conversations.service import matches
from backend.db import models as m


async def plan_of(sessions, statement: Select) -> str:
    sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with sessions() as session:
        # With sequential scans priced out, the plan shows whether indexes can serve the query at all.
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        return "\n".join(row[0] for row in await session.execute(text(f"EXPLAIN {sql}")))


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_users_search_reads_only_through_indexes(sessions):
    plan = await plan_of(
        sessions,
        select(m.Conversation.id).where(
            m.Conversation.user_id == uuid.uuid4(), m.Conversation.archived.is_(False), matches("kyoto")
        ),
    )
    assert "ix_conversation_listing" in plan, plan
    assert "Seq Scan" not in plan, plan


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_message_text_matching_can_use_the_trigram_index(sessions):
    plan = await plan_of(sessions, select(m.Conversation.id).where(matches("kyoto")))
    assert "ix_message_content_trgm" in plan, plan
