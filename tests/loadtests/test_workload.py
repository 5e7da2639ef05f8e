"""The workload model draws what WORKLOAD.md describes, reproducibly."""

from __future__ import annotations

import statistics

from loadtests.sglang_sim.tokenizer import count_tokens
from loadtests.shapes import app_store_spike, diurnal, push_storm, steady
from loadtests.workload import Workload, WorkloadConfig, system_prompt


def test_the_same_seed_gives_the_same_sessions():
    first = Workload().session()
    again = Workload().session()
    assert first == again
    assert Workload(WorkloadConfig(seed=2)).session() != first


def test_distributions_follow_the_model():
    workload = Workload(users=50)
    sessions = [workload.session() for _ in range(2000)]
    turns = [turn for session in sessions for turn in session.turns]
    assert 2.6 < statistics.mean(len(s.turns) for s in sessions) < 3.4
    assert max(len(s.turns) for s in sessions) <= 20
    plain = sorted(t.tokens for t in turns if t.tokens < 2000)
    assert 30 <= statistics.median(plain) <= 50
    assert 0.03 < sum(t.tokens >= 2000 for t in turns) / len(turns) < 0.07
    assert 0.45 < sum(t.thinking for t in turns) / len(turns) < 0.55
    backgrounded = [t for t in turns if t.background]
    assert all(t.thinking for t in backgrounded)
    assert 0.2 < len(backgrounded) / sum(t.thinking for t in turns) < 0.3
    continuing = sum(s.continues is not None for s in sessions) / len(sessions)
    assert 0.1 < continuing < 0.25


def test_message_lengths_are_counted_by_the_simulators_tokenizer():
    workload = Workload()
    for _ in range(20):
        text, tokens = workload.message()
        assert count_tokens(text) == tokens


def test_the_system_prompt_has_1500_tokens_and_never_changes():
    assert count_tokens(system_prompt()) == 1500
    assert system_prompt() == system_prompt()


def test_shapes():
    assert steady(0.3) == 1.0
    assert app_store_spike(0.05) == 1.0 and app_store_spike(0.4) == 30.0 and app_store_spike(1.0) == 15.0
    assert 1.0 < app_store_spike(0.15) < 30.0
    assert diurnal(0.0) == 0.2 and diurnal(0.5) == 1.0
    assert push_storm(0.52) == 20.0 and push_storm(0.1) == 1.0
