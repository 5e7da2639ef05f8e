"""The spike's pieces without a fleet: turn outcomes, load shapes, the report's arithmetic, the audit."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from surge import (
    ContentEvent,
    DegradedEvent,
    DoneEvent,
    ErrorEvent,
    Message,
    QueuedEvent,
    ReasoningEvent,
    StartedEvent,
    StreamEvent,
    TurnEvent,
)
from surge._sse import SSEDecoder

from backend.db import models as m
from backend.db.engine import create_engine, session_factory
from backend.db.migrate import upgrade
from backend.settings import load_settings
from loadtests.locust_support import (
    DEGRADED,
    ERROR,
    QUEUED,
    SERVED,
    SHED,
    Recorder,
    ShapeSchedule,
    TurnObservation,
    classify,
    load_records,
)
from loadtests.spike_audit import answer_times, audit, in_flight
from loadtests.spike_report import (
    attach_answer_times,
    charts,
    checks,
    cpu_table,
    percentile,
    slowest_table,
    stage_table,
    stage_times,
    summarise,
    table,
    timeseries,
)
from tests.services import execute_admin, postgres_available, require, sqlalchemy_url, unique_name

ROOT = Path(__file__).resolve().parents[2]


# --- events and outcomes ---
def message(message_id: str, role: str = "assistant", status: str = "queued") -> Message:
    now = datetime.now(UTC)
    return Message(
        id=message_id, conversation_id="c1", parent_id=None, role=role, content="", reasoning=None,
        status=status, model=None, finish_reason=None, error=None, usage=None, feedback=None,
        created_at=now, completed_at=None,
    )  # fmt: skip


def observe(*events: StreamEvent, status: int = 200) -> TurnObservation:
    obs = TurnObservation(status=status)
    for number, event in enumerate(events):
        obs.on_event(event, elapsed_s=number / 10)
    return obs


TURN = TurnEvent(user_message=message("u1", "user", "complete"), assistant_message=message("a1"))
DONE = DoneEvent(message=message("a1", status="complete"), seq=9)


def test_the_sdk_decoder_reads_ids_names_and_json_and_skips_pings():
    """What the users' streams are read with: the SDK's decoder, then its typed events."""
    decoder = SSEDecoder()
    events = [
        decoder.decode(line) for line in (": ping", "id: 3", "event: content", 'data: {"delta": "hi"}', "")
    ]
    assert events[:4] == [None] * 4
    assert events[4] is not None
    assert (events[4].event, json.loads(events[4].data), events[4].id) == ("content", {"delta": "hi"}, "3")
    assert decoder.decode("") is None  # nothing pending: no event
    obs = observe(ContentEvent(delta="hi", seq=int(events[4].id)))
    assert obs.last_seq == 3 and obs.first_token_s == 0.0


def test_a_plain_turn_is_served_with_its_first_and_last_token_times():
    obs = observe(TURN, StartedEvent(model="m", seq=1), ReasoningEvent(delta="x", seq=2), DONE)
    assert classify(obs) == (SERVED, "served")
    assert obs.acknowledged and obs.user_message_id == "u1" and obs.assistant_message_id == "a1"
    assert obs.first_token_s is not None and obs.last_token_s is not None
    assert obs.first_token_s < obs.last_token_s
    assert obs.first_token_s == pytest.approx(0.2)  # the reasoning delta, the third event
    assert obs.last_seq == 9


def test_queued_and_degraded_turns():
    queued = observe(TURN, QueuedEvent(position=3, estimated_wait_s=4, seq=1), DONE)
    assert classify(queued)[0] == QUEUED
    degraded = observe(
        TURN,
        QueuedEvent(position=1, estimated_wait_s=1, seq=1),
        DegradedEvent(reason="load", changes={"thinking": False}, seq=2),
        DONE,
    )
    assert classify(degraded)[0] == DEGRADED


def test_shed_at_send_time_needs_retry_after():
    assert classify(TurnObservation(status=503, retry_after=5, code="overloaded"))[0] == SHED
    assert classify(TurnObservation(status=429, retry_after=2, code="quota_exceeded"))[0] == SHED
    assert classify(TurnObservation(status=503, code="overloaded"))[0] == ERROR  # no Retry-After
    assert classify(TurnObservation(status=500, code="internal"))[0] == ERROR


def test_an_overloaded_error_event_is_shed_and_other_errors_are_errors():
    overloaded = observe(TURN, ErrorEvent(code="overloaded", message="", retry_after_s=7, seq=1))
    assert classify(overloaded)[0] == SHED and overloaded.body_retry_after == 7
    no_retry = observe(TURN, ErrorEvent(code="overloaded", message="", seq=1))
    assert classify(no_retry)[0] == ERROR
    upstream = observe(TURN, ErrorEvent(code="upstream_error", message="", seq=1))
    assert classify(upstream)[0] == ERROR


def test_a_stream_without_its_terminal_event_is_an_error():
    cut = observe(TURN, ContentEvent(delta="x", seq=1))
    assert classify(cut) == (ERROR, "stream ended without done or error")
    broken = observe(TURN)
    broken.transport_error = "ChunkedEncodingError"
    assert classify(broken)[0] == ERROR
    assert classify(TurnObservation(transport_error="ConnectionError"))[0] == ERROR


# --- shapes ---
def test_app_store_spike_schedule_follows_the_shape():
    s = ShapeSchedule("app_store_spike", base_users=10, duration_s=100, warmup_s=20, cooldown_s=10)
    assert s.total_s == 130
    assert s.users_at(0) == 10 and s.users_at(25) == 10  # warm-up, then the shape's baseline
    assert s.users_at(35) == 155  # halfway up the ramp: 1 + 29 x 0.5
    assert s.users_at(50) == 300 and s.users_at(79) == 300  # plateau
    assert s.users_at(119) == pytest.approx(150, abs=5)  # decayed to half the peak
    assert s.users_at(125) == 10  # recovery at the baseline
    assert s.users_at(130) is None and s.tick(131) is None
    assert s.spawn_rate_at(35) >= 29  # keeps up with the ramp (29 users a second)
    names = [name for name, _, _ in s.phases()]
    assert names == ["baseline", "ramp", "plateau", "decay", "recovery"]
    assert s.phases()[2] == ("plateau", 40.0, 80.0)


def test_other_shapes():
    storm = ShapeSchedule("push_storm", base_users=5, duration_s=100, peak=20)
    assert storm.users_at(10) == 5 and storm.users_at(52) == 100
    assert storm.spawn_rate_at(49.5) >= 95  # the crowd arrives within a second
    night = ShapeSchedule("diurnal", base_users=50, duration_s=100)
    assert night.users_at(0) == 10 and night.users_at(50) == 50
    assert ShapeSchedule("steady", base_users=7, duration_s=10).users_at(5) == 7
    assert [p[0] for p in storm.phases()] == ["run"]
    with pytest.raises(ValueError, match="unknown shape"):
        ShapeSchedule("tsunami")


def test_locust_shape_classes_tick():
    """The LoadTestShape classes, in a child process (importing locust monkey-patches the stdlib)."""
    script = """
import json, types
from loadtests.locust_shapes import AppStoreSpikeShape, DiurnalShape, PushStormShape, SteadyShape
from loadtests.locustfile import SurgeShape
options = types.SimpleNamespace(shape="app_store_spike", base_users=10, shape_duration=100.0,
                                warmup=0.0, cooldown=0.0, peak=30.0)
out = {}
for cls in (AppStoreSpikeShape, DiurnalShape, PushStormShape, SteadyShape, SurgeShape):
    shape = cls()
    shape.runner = types.SimpleNamespace(environment=types.SimpleNamespace(parsed_options=options))
    shape.get_run_time = lambda: 50.0
    out[cls.__name__] = shape.tick()
print(json.dumps(out))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    ticks = json.loads(done.stdout.strip().splitlines()[-1])
    assert ticks["AppStoreSpikeShape"][0] == 300
    assert ticks["SurgeShape"][0] == 300
    assert ticks["DiurnalShape"][0] == 10
    assert ticks["PushStormShape"][0] == 300
    assert ticks["SteadyShape"][0] == 10


# --- report ---
def synthetic(t0: float = 1000.0) -> tuple[list[dict], list[dict]]:
    records: list[dict] = [{"type": "start", "t": t0}]
    for second in range(0, 100, 2):
        records.append(
            {"type": "users", "t": t0 + second, "users": 10 if second < 10 or second >= 90 else 300}
        )
    for index in range(40):
        t = t0 + index * 2.5
        spike = 20 <= index * 2.5 < 60
        records.append(
            {
                "type": "turn",
                "t": t,
                "t_end": t + 1,
                "tier": "plus" if index % 4 == 0 else "free",
                "outcome": SHED if spike and index % 2 else SERVED,
                "ttft": 0.9 if spike else 0.5,
                "background": "none",
            }
        )
    samples = []
    for second in range(0, 100, 2):
        level = 2 if 20 <= second < 70 else 0
        samples.append(
            {
                "t": t0 + second,
                "degrade_level": level,
                "busy": 0.5 if level == 0 else 1.0,
                "prompt_tokens": second * 1000.0,
                "cached_tokens": second * 600.0,
                "users": 10,
            }
        )
    return records, samples


def test_percentile_is_nearest_rank():
    assert percentile([1, 2, 3, 4], 0.5) == 2
    assert percentile([5.0] * 3 + [100.0], 0.99) == 100.0
    assert math.isnan(percentile([], 0.5))


def test_phase_figures_and_checks(monkeypatch):
    monkeypatch.setattr("loadtests.spike_report.MIN_P99_SAMPLES", 1)
    records, samples = synthetic()
    turns = [r for r in records if r["type"] == "turn"]
    baseline = summarise(turns, samples, 1000, 1010)
    plateau = summarise(turns, samples, 1020, 1060)
    assert baseline["turns"] == 4 and baseline[SERVED] == 4
    assert plateau[SHED] == 8 and plateau[SERVED] == 8
    assert plateau["turns_per_s"] == pytest.approx(16 / 40)
    assert baseline["ttft_plus_p99_s"] == 0.5 and plateau["ttft_plus_p99_s"] == 0.9
    assert plateau["degrade_max"] == 2 and baseline["degrade_max"] == 0
    assert plateau["busy_mean"] == 1.0
    assert plateau["hit_rate"] == pytest.approx(0.6)
    phases = {"baseline": baseline, "plateau": plateau, "ramp": summarise(turns, samples, 1010, 1020)}
    results = {c["name"]: c for c in checks(phases, None, records, samples)}
    assert results["paid TTFT p99 on the plateau within 2x of before"]["passed"] is True
    assert results["degrade level rises during the spike and falls back after it"]["passed"] is True
    assert results["no lost or duplicated message"]["passed"] is False  # no audit: not a pass
    assert results["no 5xx other than 503 with Retry-After"]["passed"] is True
    assert "| baseline |" in table(phases)


def test_checks_fail_on_slow_paid_turns_a_stuck_level_and_a_500(monkeypatch):
    monkeypatch.setattr("loadtests.spike_report.MIN_P99_SAMPLES", 1)
    records, samples = synthetic()
    for record in records:
        if record["type"] == "turn" and record["tier"] == "plus" and 1020 <= record["t"] < 1060:
            record["ttft"] = 5.0
    records.append({"type": "http_error", "status": 500, "route": "POST /x", "retry_after": None})
    records.append({"type": "http_error", "status": 503, "route": "POST /y", "retry_after": 3})
    for sample in samples:
        sample["degrade_level"] = 2 if sample["t"] >= 1020 else 0  # never comes back down
    turns = [r for r in records if r["type"] == "turn"]
    phases = {
        "baseline": summarise(turns, samples, 1000, 1010),
        "ramp": summarise(turns, samples, 1010, 1020),
        "plateau": summarise(turns, samples, 1020, 1060),
    }
    audit_ok = {"acknowledged": 5, "lost": 0, "duplicated": 0, "non_terminal_answers": []}
    results = {c["name"]: c for c in checks(phases, audit_ok, records, samples)}
    assert results["paid TTFT p99 on the plateau within 2x of before"]["passed"] is False
    assert results["degrade level rises during the spike and falls back after it"]["passed"] is False
    five = results["no 5xx other than 503 with Retry-After"]
    assert five["passed"] is False and "500" in five["detail"] and "503" not in five["detail"]
    assert results["no lost or duplicated message"]["passed"] is True
    no_level = checks(phases, audit_ok, records, [{**s, "degrade_level": None} for s in samples])
    assert any("no degrade level" in c["detail"] for c in no_level)


def test_a_turns_time_to_first_token_is_split_into_stages():
    turn = {"t": 100.0, "ttft": 1.0, "tier": "plus", "outcome": SERVED, "assistant_message_id": "a1"}
    assert stage_times(turn) is None  # without the server's times
    attach_answer_times([turn], {"a1": {"accepted": 100.1, "started": 100.5, "first_token": 100.75}})
    stages = stage_times(turn)
    assert stages == pytest.approx({"accept": 0.1, "queue": 0.4, "worker": 0.25, "deliver": 0.25})
    assert sum(stages.values()) == pytest.approx(turn["ttft"])


def test_stage_percentiles_the_slowest_turns_and_cpu_per_phase():
    turns = [
        {"t": 10.0 + i, "ttft": 0.1 * (i + 1), "tier": "plus", "outcome": SERVED, "thinking": False,
         "answer": {"accepted": 10.0 + i + 0.01, "started": 10.0 + i + 0.02,
                    "first_token": 10.0 + i + 0.1 * (i + 1) - 0.01}}
        for i in range(10)
    ]  # fmt: skip
    turns.append({"t": 12.0, "ttft": 9.0, "tier": "plus", "outcome": SERVED, "background": "resumed"})
    samples = [{"t": 10.0 + i, "cpu": {"surge": 0.5, "machine": 1.0 + i / 10}} for i in range(4)]
    phases = {"plateau": summarise(turns, samples, 10.0, 20.0)}
    split = phases["plateau"]["stages_plus"]
    assert split["n"] == 10  # the backgrounded turn has no first token of the phone's own to split
    assert split["accept"][0] == pytest.approx(0.01) and split["deliver"][1] == pytest.approx(0.01)
    assert split["worker"][1] == pytest.approx(0.97)
    slowest = phases["plateau"]["slowest_plus"]
    assert [row["ttft"] for row in slowest] == pytest.approx([1.0, 0.9, 0.8, 0.7, 0.6])
    assert phases["plateau"]["cpu_cores"] == pytest.approx({"machine": 1.15, "surge": 0.5})
    assert "| plateau | plus | 10 |" in stage_table(phases)
    assert "| 9.0 | 1.00 |" in slowest_table(phases, "plateau", "plus", t0=10.0)
    assert "| plateau | 1.15 | 0.50 |" in cpu_table(phases)
    assert cpu_table({"plateau": summarise(turns, [], 10.0, 20.0)}) == "(not sampled)"


def test_paid_ttft_is_compared_with_every_turn_before_the_spike_given_enough_turns():
    def turns(tier: str, count: int, ttft: float, t: float) -> list[dict]:
        return [{"t": t, "ttft": ttft, "tier": tier, "outcome": SERVED} for _ in range(count)]

    # Before: 54 free turns and 6 paid ones; one free turn pasted a document (0.4 s).
    before = turns("free", 53, 0.05, 1.0) + turns("free", 1, 0.4, 1.0) + turns("plus", 6, 0.05, 1.0)
    plateau = turns("plus", 60, 0.06, 20.0) + turns("plus", 1, 0.7, 20.0)
    phases = {
        "baseline": summarise(before, [], 0.0, 10.0),
        "plateau": summarise(plateau, [], 10.0, 30.0),
    }
    assert phases["baseline"]["ttft_all_n"] == 60 and phases["baseline"]["ttft_all_p99_s"] == 0.4
    (check,) = [c for c in checks(phases, None, [], []) if c["name"].startswith("paid TTFT")]
    assert check["passed"] is True and "0.40 s before" in check["detail"] and "n=6" in check["detail"]
    phases["plateau"] = summarise(plateau + turns("plus", 1, 0.9, 20.0), [], 10.0, 30.0)
    (check,) = [c for c in checks(phases, None, [], []) if c["name"].startswith("paid TTFT")]
    assert check["passed"] is False
    phases["baseline"] = summarise(before[:40], [], 0.0, 10.0)
    (check,) = [c for c in checks(phases, None, [], []) if c["name"].startswith("paid TTFT")]
    assert check["passed"] is None and "too few turns" in check["detail"]


def test_timeseries_and_charts(tmp_path):
    records, samples = synthetic()
    rows = timeseries(records, samples, 1000.0)
    assert rows[0]["t"] == 0 and rows[0]["users"] == 10
    assert rows[15]["users"] == 300
    assert rows[15]["degrade_level"] == 2 and rows[2]["degrade_level"] == 0
    assert sum(row[SERVED] + row[SHED] for row in rows) * 2 == pytest.approx(40)
    assert rows[5]["hit_rate"] == pytest.approx(0.6)
    assert rows[3]["ttft_plus_p50_s"] == 0.5
    written = charts(rows, [("baseline", 0, 10), ("plateau", 20, 60)], tmp_path)
    assert {"users.png", "turns.png", "ttft.png", "degrade.png", "busy.png"} == set(written)
    assert all((tmp_path / name).stat().st_size > 1000 for name in written)


def test_recorder_writes_lines_that_load_back(tmp_path, monkeypatch):
    recorder = Recorder(tmp_path)
    recorder.write("ack", key="k", user_message_id="u")
    recorder.close()
    (tmp_path / "records-torn.jsonl").write_text('{"type": "turn"}\n{"type": "tu')
    assert [r["type"] for r in load_records(tmp_path)] == ["ack", "turn"]
    # No directory: records nothing, anywhere (not in the working directory either).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    nowhere = Recorder(None)
    nowhere.write("ignored")
    nowhere.close()
    assert list(elsewhere.iterdir()) == []


# --- the audit ---
async def build_conversation(url: str) -> dict:
    """A user with one conversation: three acknowledged turns, a duplicated user message, a missing one
    and an answer left streaming."""
    engine = create_engine(load_settings({}), url=url)
    now = datetime.now(UTC)
    try:
        async with session_factory(engine)() as session:
            user = m.User(email=f"{uuid.uuid4().hex[:6]}@audit.example", tier="free")
            session.add(user)
            await session.flush()
            conversation = m.Conversation(user_id=user.id, model="deepseek-v3.1")
            session.add(conversation)
            await session.flush()
            ids: dict = {}
            parent = None
            for index, status in enumerate(["complete", "failed", "streaming"]):
                question = m.Message(
                    conversation_id=conversation.id, parent_id=parent, role="user", content=f"question {index}",
                    status="complete", created_at=now + timedelta(seconds=index),
                )  # fmt: skip
                session.add(question)
                await session.flush()
                answer = m.Message(
                    conversation_id=conversation.id, parent_id=question.id, role="assistant", content="",
                    status=status, created_at=now + timedelta(seconds=index, milliseconds=1),
                )  # fmt: skip
                if status == "complete":
                    answer.started_at = answer.created_at + timedelta(milliseconds=200)
                    answer.first_token_at = answer.created_at + timedelta(milliseconds=500)
                session.add(answer)
                await session.flush()
                ids[index] = (str(question.id), str(answer.id))
                parent = answer.id
            # The same text again under the same parent: a duplicate however it came to be.
            session.add(
                m.Message(
                    conversation_id=conversation.id, parent_id=uuid.UUID(ids[1][1]), role="user",
                    content="question 2", status="complete",
                )
            )  # fmt: skip
            await session.commit()
            return {"email": user.email, "ids": ids}
    finally:
        await engine.dispose()


def acks(built: dict) -> list[dict]:
    return [
        {"type": "ack", "email": built["email"], "route": "send", "key": f"k{index}",
         "user_message_id": question, "assistant_message_id": answer}
        for index, (question, answer) in built["ids"].items()
    ]  # fmt: skip


async def check_audit(url: str) -> None:
    built = await build_conversation(url)
    clean = await audit(url, acks(built))
    assert clean.acknowledged == 3
    assert not clean.missing_user_messages and not clean.key_conflicts
    assert len(clean.duplicate_user_messages) == 1  # "question 2" twice under the same parent
    assert clean.non_terminal_answers == [built["ids"][2][1]]
    assert clean.answer_status == {"complete": 1, "failed": 1, "streaming": 1}
    assert clean.unacknowledged_user_messages == 1
    assert not clean.ok
    assert await in_flight(url) == 1  # the answer left streaming

    records = acks(built)
    lost = str(uuid.uuid4())
    records.append({"type": "ack", "email": built["email"], "route": "send", "key": "k9",
                    "user_message_id": lost, "assistant_message_id": built["ids"][0][1]})  # fmt: skip
    # The same key answered with another user message: a duplicate by idempotency.
    records.append({"type": "replay", "key": "k0", "user_message_id": built["ids"][1][0]})
    records.append({"type": "turn", "outcome": "unattended", "assistant_message_id": built["ids"][1][1]})
    result = await audit(url, records)
    assert result.missing_user_messages == [lost]
    assert result.lost == 1
    assert result.key_conflicts and result.key_conflicts[0]["key"] == "k0"
    assert result.duplicated == 2
    assert result.unattended_status == {"failed": 1}
    assert result.to_dict()["ok"] is False

    # The server's times of the one answer that got a first token.
    times = await answer_times(url)
    assert list(times) == [built["ids"][0][1]]
    answer = times[built["ids"][0][1]]
    assert answer["started"] - answer["accepted"] == pytest.approx(0.2)
    assert answer["first_token"] - answer["started"] == pytest.approx(0.3)


def test_audit_on_sqlite(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.sqlite3'}"
    upgrade(url)
    asyncio.run(check_audit(url))


@pytest.mark.postgres
def test_audit_on_postgresql():
    require("PostgreSQL", postgres_available())
    name = unique_name("spike_audit")
    asyncio.run(execute_admin(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(sqlalchemy_url(name))
        asyncio.run(check_audit(sqlalchemy_url(name)))
    finally:
        asyncio.run(execute_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
