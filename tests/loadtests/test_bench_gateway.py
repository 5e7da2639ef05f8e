"""The gateway benchmark's report: a run of some phases still prints what it measured."""

from __future__ import annotations

import argparse

import pytest

from loadtests.bench_gateway import print_report


def test_a_run_of_some_phases_prints_their_figures_and_dashes_for_the_rest(
    capsys: pytest.CaptureFixture[str],
):
    result = {
        "backend": "postgres",
        "idle": {"cpu_share_of_a_core": 0.004},
        "turns": {
            "cpu_ms_per_turn": 6.55,
            "statements_per_turn": 7.04,
            "database_kb_per_turn": 3.65,
            "redis_commands_per_turn": 27.16,
        },
        "levels": [],
        "max_streams_held": 0,
    }
    print_report([result], argparse.Namespace(phases=["turns"]))
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("postgres"))
    assert row.split() == ["postgres", "0.40", "6.55", "-", "-", "7.04", "-", "3.65", "27.16", "-", "-", "-"]
