"""Generated completions: deterministic per prompt, lengths distributed as WORKLOAD.md says."""

from __future__ import annotations

import statistics

from loadtests.sglang_sim import textgen


def test_same_prompt_same_output_and_different_prompts_differ():
    a = textgen.generate_completion(7, [1, 2, 3], thinking=True)
    assert a == textgen.generate_completion(7, [1, 2, 3], thinking=True)
    assert a != textgen.generate_completion(7, [1, 2, 4], thinking=True)
    assert a != textgen.generate_completion(8, [1, 2, 3], thinking=True)


def test_no_reasoning_without_thinking():
    assert textgen.generate_completion(0, [5], thinking=False).reasoning_ids == []


def test_lengths_follow_the_workload_distributions():
    lengths = [textgen.completion_lengths(0, [i, i * 7], True) for i in range(20000)]
    reasoning = sorted(r for r, _ in lengths)
    answer = sorted(a for _, a in lengths)
    assert 1100 < statistics.median(reasoning) < 1300
    assert 5500 < reasoning[int(0.9 * len(reasoning))] < 6500
    assert max(reasoning) <= textgen.REASONING_CAP
    assert 275 < statistics.median(answer) < 325
    assert 1350 < answer[int(0.95 * len(answer))] < 1650


def test_limit_caps_the_materialised_tokens():
    c = textgen.generate_completion(0, [9, 9], thinking=True, limit=10)
    assert len(c.reasoning_ids) + len(c.answer_ids) <= 10
