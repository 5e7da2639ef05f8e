"""The timing model (prefill and decode step times) and the virtual clock it runs on."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class TimingModel:
    """Step durations in virtual seconds, as one GPU node would take them."""

    prefill_tokens_per_s: float = 32000.0
    decode_step_s: float = 0.030
    decode_step_per_req_s: float = 0.00015

    def prefill_s(self, uncached_tokens: int) -> float:
        """One prefill batch: proportional to the tokens not found in the radix cache."""
        return uncached_tokens / self.prefill_tokens_per_s

    def decode_s(self, batch_size: int) -> float:
        """One decode step, one token for each running request."""
        return self.decode_step_s + self.decode_step_per_req_s * batch_size


class VirtualClock:
    """Virtual time = real monotonic time * speed-up, counted from the clock's creation."""

    def __init__(self, speedup: float) -> None:
        self.speedup = speedup
        self._origin = time.monotonic()

    def now(self) -> float:
        """Virtual seconds since start."""
        return (time.monotonic() - self._origin) * self.speedup

    def wall_time(self, virtual_t: float) -> float:
        """Wall-clock (epoch) seconds at virtual time `virtual_t`."""
        return time.time() + (virtual_t - self.now()) / self.speedup

    def real_delay(self, virtual_t: float) -> float:
        """Real seconds until virtual time `virtual_t` (negative when already past)."""
        return virtual_t / self.speedup - (time.monotonic() - self._origin)
