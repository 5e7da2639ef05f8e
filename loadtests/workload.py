"""The seeded workload model of WORKLOAD.md, shared by the benchmarks and the Locust users.

A *session* is one user opening the app: it starts a new conversation (80%) or continues one of the
user's earlier ones (20%), then sends a geometric number of turns (mean 3, cap 20) separated by think
times. Each turn has a user message (lognormal length; 5% are pasted documents), a thinking switch
(50% on) and, for a quarter of thinking turns, a phone going to the background mid-answer.

Texts come from the simulator's tokenizer and corpus, so a message of "40 tokens" is 40 tokens to the
simulated worker and to the benchmark oracle alike.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from loadtests.sglang_sim.textgen import sample_text

_Z90 = 1.2815515655446004
_Z95 = 1.6448536269514722


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    """WORKLOAD.md's defaults; every benchmark prints the values it ran with."""

    seed: int = 1
    system_prompt_tokens: int = 1500
    p_new_conversation: float = 0.8
    turns_mean: float = 3.0
    turns_cap: int = 20
    message_median_tokens: float = 40.0
    message_p95_tokens: float = 400.0
    p_document: float = 0.05
    document_min_tokens: int = 2000
    document_max_tokens: int = 8000
    p_thinking: float = 0.5
    think_time_median_s: float = 20.0
    think_time_p90_s: float = 120.0
    p_background: float = 0.25  # of thinking turns
    background_after_min_s: float = 5.0
    background_after_max_s: float = 30.0
    p_resume: float = 0.5  # of backgrounded turns; the rest never come back (they rely on the push)


@dataclass(frozen=True, slots=True)
class Background:
    """The phone sleeps ``after_s`` into the answer; it resumes the stream later or never comes back."""

    after_s: float
    resumes: bool


@dataclass(frozen=True, slots=True)
class TurnPlan:
    text: str
    tokens: int
    thinking: bool
    think_time_s: float  # the wait before sending this turn (0 for a session's first turn)
    background: Background | None = None


@dataclass(frozen=True, slots=True)
class SessionPlan:
    user: int
    # None: a new conversation; else the index of one of this user's earlier conversations.
    continues: int | None
    turns: tuple[TurnPlan, ...]


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def system_prompt(config: WorkloadConfig = WorkloadConfig()) -> str:
    """The system prompt every turn starts with: the same text for every user (always a cache hit)."""
    return sample_text(config.seed * 7919 + 1, config.system_prompt_tokens)


@dataclass
class Workload:
    """Draws sessions; the same seed gives the same sequence of sessions, users and texts."""

    config: WorkloadConfig = field(default_factory=WorkloadConfig)
    users: int = 1000

    def __post_init__(self) -> None:
        self._rng = random.Random(self.config.seed)
        self._conversations: dict[int, int] = {}  # user -> conversations started so far
        self._texts = 0

    @property
    def message_sigma(self) -> float:
        return math.log(self.config.message_p95_tokens / self.config.message_median_tokens) / _Z95

    @property
    def think_sigma(self) -> float:
        return math.log(self.config.think_time_p90_s / self.config.think_time_median_s) / _Z90

    def turn_count(self) -> int:
        # Geometric on 1, 2, 3, ... with the configured mean.
        p = 1.0 / self.config.turns_mean
        count = 1 + int(math.log(1.0 - self._rng.random()) / math.log(1.0 - p)) if p < 1 else 1
        return min(count, self.config.turns_cap)

    def message(self) -> tuple[str, int]:
        config = self.config
        if self._rng.random() < config.p_document:
            tokens = self._rng.randint(config.document_min_tokens, config.document_max_tokens)
        else:
            tokens = max(1, round(lognormal(self._rng, config.message_median_tokens, self.message_sigma)))
        self._texts += 1
        # Each message draws its own text, so that no two users' prompts agree beyond the system prompt.
        return sample_text(config.seed * 1_000_003 + self._texts, tokens), tokens

    def turn(self, first: bool) -> TurnPlan:
        config = self.config
        text, tokens = self.message()
        thinking = self._rng.random() < config.p_thinking
        think_time = 0.0 if first else lognormal(self._rng, config.think_time_median_s, self.think_sigma)
        background = None
        if thinking and self._rng.random() < config.p_background:
            background = Background(
                after_s=self._rng.uniform(config.background_after_min_s, config.background_after_max_s),
                resumes=self._rng.random() < config.p_resume,
            )
        return TurnPlan(
            text=text, tokens=tokens, thinking=thinking, think_time_s=think_time, background=background
        )

    def session(self) -> SessionPlan:
        user = self._rng.randrange(self.users)
        earlier = self._conversations.get(user, 0)
        continues = None
        if earlier and self._rng.random() >= self.config.p_new_conversation:
            continues = self._rng.randrange(earlier)
        else:
            self._conversations[user] = earlier + 1
        count = self.turn_count()
        return SessionPlan(
            user=user, continues=continues, turns=tuple(self.turn(i == 0) for i in range(count))
        )

    def sessions(self) -> Iterator[SessionPlan]:
        while True:
            yield self.session()


def poisson_arrivals(rng: random.Random, rate_per_s: float, duration_s: float) -> Iterator[float]:
    """Arrival times of a Poisson process of ``rate_per_s`` over ``duration_s`` seconds."""
    now = 0.0
    while True:
        now += rng.expovariate(rate_per_s)
        if now >= duration_s:
            return
        yield now
