"""SimConfig: every flag of the simulated server, with SGLang's names where SGLang has one."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def _flag(default: Any, help: str, choices: Sequence[str] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class SimConfig:
    """Configuration of one simulated SGLang worker; `python -m loadtests.sglang_sim --help` lists it.

    Defaults model one 8xH200 node serving DeepSeek-R1 (see README.md, "How the defaults were chosen").
    Durations named `*_s`/`*_ms` of the timing model are virtual (divided by `sim_speedup` in real time);
    fault durations are real seconds.
    """

    # --- SGLang launch_server flags ---
    host: str = _flag("127.0.0.1", "address to listen on")
    port: int = _flag(30000, "port to listen on")
    model_path: str = _flag("deepseek-ai/DeepSeek-R1", "model reported by /model_info and /server_info")
    tokenizer_path: str | None = _flag(None, "tokenizer reported by /model_info (default: model path)")
    served_model_name: str | None = _flag(None, "model id in /v1/models (default: model path)")
    chat_template: str | None = _flag(
        None,
        "deepseek-r1 (always thinks), deepseek-v3.1 (thinks with thinking=true) or qwen3 "
        "(enable_thinking, on by default); default: inferred from the model path",
        ["deepseek-r1", "deepseek-v3.1", "qwen3"],
    )
    reasoning_parser: str | None = _flag(
        None, "split reasoning into reasoning_content (e.g. deepseek-r1, deepseek-v3, qwen3)"
    )
    enable_metrics: bool = _flag(False, "serve Prometheus /metrics")
    enable_cache_report: bool = _flag(False, "report usage.prompt_tokens_details.cached_tokens")
    context_length: int = _flag(163840, "model context length in tokens (DeepSeek-R1: 163,840)")
    max_running_requests: int = _flag(2048, "cap on requests decoding at once")
    max_queued_requests: int | None = _flag(None, "reject new requests with 503 when this many wait")
    max_total_tokens: int = _flag(570000, "KV cache capacity in tokens (radix cache + running requests)")
    page_size: int = _flag(1, "tokens per KV page; cache hits are whole pages")
    schedule_policy: str = _flag("fcfs", "waiting-queue order", ["fcfs", "lpm"])
    enable_priority_scheduling: bool = _flag(
        False, "order the waiting queue by each request's `priority`, and preempt for it (see below)"
    )
    schedule_low_priority_values_first: bool = _flag(
        False, "with priority scheduling, lower `priority` values go first (default: higher)"
    )
    priority_scheduling_preemption_threshold: int = _flag(
        10, "a waiting request preempts a running one whose priority is worse by more than this"
    )
    chunked_prefill_size: int = _flag(8192, "most uncached tokens prefilled in one step")
    max_prefill_tokens: int = _flag(16384, "most prompt tokens admitted in one prefill batch")
    stream_interval: int = _flag(1, "stream after at least this many new tokens")
    radix_eviction_policy: str = _flag("lru", "radix cache eviction order", ["lru", "lfu"])
    disable_radix_cache: bool = _flag(False, "no prefix caching (every prompt token is prefilled)")
    log_level: str = _flag("warning", "uvicorn log level")

    # --- simulation ---
    sim_speedup: float = _flag(1.0, "virtual seconds per real second (x20 makes a 30 ms step 1.5 ms)")
    sim_seed: int = _flag(0, "seed of the generated text and lengths; same seed+prompt, same output")
    sim_prefill_tokens_per_s: float = _flag(32000.0, "prefill speed in uncached tokens per virtual second")
    sim_decode_step_ms: float = _flag(30.0, "decode step time with an empty batch (virtual ms)")
    sim_decode_step_per_req_ms: float = _flag(0.15, "added decode step time per running request (virtual ms)")
    sim_emit_interval_ms: float = _flag(
        10.0, "coalesce streamed tokens for this long in real ms (first token and the end go at once)"
    )
    sim_abort_delay_s: float = _flag(2.0, "abort a request this long after its client went away (virtual s)")
    sim_startup_s: float = _flag(0.0, "answer /health with 503 for this long after start (real s)")
    sim_trace_file: str | None = _flag(
        None, "append a JSON line per finished request (times, prompt and output ids) here, for oracles"
    )
    sim_max_lag_ms: float = _flag(
        200.0, "how far (real ms) the virtual clock may fall behind before it skips ahead"
    )

    # --- fault injection (also settable at run time: POST /sim/faults) ---
    sim_fault_refuse_rate: float = _flag(0.0, "share of generation requests refused with 503 queue-full")
    sim_fault_stall_s: float = _flag(0.0, "real seconds to stall before a request's first token")
    sim_fault_stall_rate: float = _flag(1.0, "share of requests that stall when sim_fault_stall_s > 0")
    sim_fault_die_after_tokens: int | None = _flag(
        None, "drop the connection after this many streamed tokens"
    )
    sim_fault_die_rate: float = _flag(1.0, "share of streams that die when sim_fault_die_after_tokens is set")
    sim_fault_slowdown: float = _flag(1.0, "multiply every step time by this factor")
    sim_fault_health_fail: bool = _flag(False, "answer /health and /health_generate with 503")
    sim_fault_answer_text: str | None = _flag(
        None, "answer every request with this text instead of the generated one (a client's test input)"
    )

    def __post_init__(self) -> None:
        if self.sim_speedup <= 0:
            raise ValueError("sim_speedup must be positive")
        if self.page_size < 1 or self.max_total_tokens < 1 or self.max_running_requests < 1:
            raise ValueError("page_size, max_total_tokens and max_running_requests must be >= 1")

    @property
    def model_name(self) -> str:
        """The name clients and metrics see."""
        return self.served_model_name or self.model_path

    @property
    def template_name(self) -> str:
        """The chat template in force."""
        from loadtests.sglang_sim.chat_template import template_for_model

        return self.chat_template or template_for_model(self.model_path)

    def replace(self, **changes: Any) -> SimConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_argv(self) -> list[str]:
        """Command-line flags reproducing this config (only those differing from the defaults)."""
        argv: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                argv.append(flag if value else "--no-" + flag[2:])
            elif value is not None:
                argv += [flag, str(value)]
        return argv


def _base_type(annotation: Any) -> type:
    hint = annotation
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    assert isinstance(hint, type)
    return hint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per SimConfig field (`--max-running-requests`, `--sim-speedup`, ...)."""
    hints = typing.get_type_hints(SimConfig)
    for f in dataclasses.fields(SimConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = _base_type(hints[f.name])
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type=kind, choices=f.metadata["choices"], help=help_text)
    parser.set_defaults(**{f.name: f.default for f in dataclasses.fields(SimConfig)})


def from_namespace(ns: argparse.Namespace) -> SimConfig:
    """The SimConfig an argparse namespace built by `add_arguments` describes."""
    return SimConfig(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(SimConfig)})


def parse_args(argv: Sequence[str] | None = None) -> SimConfig:
    """Parse command-line flags into a SimConfig."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.sglang_sim", description=SimConfig.__doc__)
    add_arguments(parser)
    return from_namespace(parser.parse_args(argv))
