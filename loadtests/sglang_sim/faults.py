"""Fault injection: refusals, stalls, dropped streams, slowdowns, failing health checks, a fixed answer."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any

from loadtests.sglang_sim.config import SimConfig


@dataclass
class Faults:
    """The faults in force; changed at run time through `POST /sim/faults`."""

    refuse_rate: float = 0.0
    stall_s: float = 0.0
    stall_rate: float = 1.0
    die_after_tokens: int | None = None
    die_rate: float = 1.0
    slowdown: float = 1.0
    health_fail: bool = False
    # Not a fault of a real server: every answer is this text (reasoning unchanged), so a client's tests
    # can see how it renders a given answer, hostile Markdown say.
    answer_text: str | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(0)
        self.validate()

    @classmethod
    def from_config(cls, config: SimConfig) -> Faults:
        """The faults a config's `--sim-fault-*` flags ask for."""
        return cls(**{f.name: getattr(config, "sim_fault_" + f.name) for f in fields(cls)})

    def validate(self) -> None:
        """Raise ValueError on out-of-range values."""
        for rate in (self.refuse_rate, self.stall_rate, self.die_rate):
            if not 0.0 <= rate <= 1.0:
                raise ValueError("rates must be between 0 and 1")
        if self.stall_s < 0 or self.slowdown <= 0:
            raise ValueError("stall_s must be >= 0 and slowdown > 0")
        if self.die_after_tokens is not None and self.die_after_tokens < 0:
            raise ValueError("die_after_tokens must be >= 0")

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update (unknown keys and bad types raise ValueError; nothing changes then)."""
        names = {f.name: f for f in fields(self)}
        trial = asdict(self)
        for key, value in changes.items():
            if key not in names:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(names)}")
            if key == "health_fail" and not isinstance(value, bool):
                raise ValueError("health_fail must be a boolean")
            if key == "answer_text" and value is not None and not isinstance(value, str):
                raise ValueError("answer_text must be a string or null")
            if (
                key == "die_after_tokens"
                and value is not None
                and (not isinstance(value, int) or isinstance(value, bool))
            ):
                raise ValueError("die_after_tokens must be an integer or null")
            if key not in ("health_fail", "die_after_tokens", "answer_text") and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise ValueError(f"{key} must be a number")
            trial[key] = value
        Faults(**trial)  # validates the combination
        for key, value in trial.items():
            setattr(self, key, value)

    def reset(self) -> None:
        """Clear every fault."""
        self.update(asdict(Faults()))

    def to_dict(self) -> dict[str, Any]:
        """The faults as JSON."""
        return asdict(self)

    def refuse(self) -> bool:
        """Draw: refuse this request?"""
        return self.refuse_rate > 0 and self._rng.random() < self.refuse_rate

    def stall(self) -> float:
        """Draw: real seconds this request stalls before its first token."""
        return self.stall_s if self.stall_s > 0 and self._rng.random() < self.stall_rate else 0.0

    def die_after(self) -> int | None:
        """Draw: streamed tokens after which this stream's connection drops (None: it does not)."""
        if self.die_after_tokens is None or self._rng.random() >= self.die_rate:
            return None
        return self.die_after_tokens
