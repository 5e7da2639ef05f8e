"""SimServer: one simulated worker's state (scheduler, cache, faults, metrics) behind the HTTP layer."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Sequence
from typing import Any

from loadtests.sglang_sim.asgi import DisconnectWatch, Receive, Send, send_json
from loadtests.sglang_sim.chat_template import get_chat_template
from loadtests.sglang_sim.config import SimConfig
from loadtests.sglang_sim.faults import Faults
from loadtests.sglang_sim.metrics import LiveGauges, SimStats, make_registry
from loadtests.sglang_sim.output_plan import plan_output
from loadtests.sglang_sim.protocol import error_body
from loadtests.sglang_sim.scheduler import QueueFullError, Request, Scheduler
from loadtests.sglang_sim.timing import VirtualClock
from loadtests.sglang_sim.tokenizer import get_tokenizer

SGLANG_VERSION = "0.5.5"  # the server version this simulator follows (SGLANG.md: 0.5.x)


class SimServer:
    """Everything one simulated SGLang worker knows; the ASGI app in app.py serves it."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.tok = get_tokenizer()
        self.template = get_chat_template(config.template_name)
        self.faults = Faults.from_config(config)
        self.stats = SimStats()
        self.clock = VirtualClock(config.sim_speedup)
        self.scheduler = Scheduler(config, self.faults, self.stats, self.clock)
        self.registry = make_registry(
            config.model_name,
            self.stats,
            LiveGauges(
                num_running=lambda: len(self.scheduler.running),
                num_queue=lambda: len(self.scheduler.waiting),
                num_used_tokens=lambda: self.scheduler.used_tokens,
                max_total_tokens=config.max_total_tokens,
            ),
        )
        self.started_real = time.monotonic()
        self.created = int(time.time())
        self.abort_delay_real = config.sim_abort_delay_s / config.sim_speedup

    def ensure_started(self) -> None:
        """Start the scheduler loop on the current event loop if it is not running yet."""
        if not self.scheduler.alive:
            self.scheduler.start()

    async def shutdown(self) -> None:
        """Stop the scheduler loop."""
        await self.scheduler.stop()

    @property
    def healthy(self) -> bool:
        """What /health answers: starting up, failing by fault, or a dead scheduler give 503."""
        starting = time.monotonic() - self.started_real < self.config.sim_startup_s
        return not starting and not self.faults.health_fail and self.scheduler.alive

    def validate_length(self, prompt_len: int, max_new_tokens: int | None) -> None:
        """SGLang's tokenizer-manager checks, with its messages (ValueError becomes a 400)."""
        ctx = self.config.context_length
        if prompt_len >= ctx:
            raise ValueError(
                f"The input ({prompt_len} tokens) is longer than the model's context length ({ctx} tokens)."
            )
        if max_new_tokens is not None and max_new_tokens + prompt_len >= ctx:
            raise ValueError(
                f"Requested token count exceeds the model's maximum context length of {ctx} tokens. "
                f"You requested a total of {max_new_tokens + prompt_len} tokens: {prompt_len} tokens from "
                f"the input messages and {max_new_tokens} tokens for the completion. Please reduce the "
                "number of tokens in the input messages or the completion to fit within the limit."
            )
        if max_new_tokens is not None and max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be at least 0, got {max_new_tokens}.")
        if prompt_len >= self.config.max_total_tokens:
            raise ValueError(
                f"Input length ({prompt_len} tokens) exceeds the maximum allowed length "
                f"({self.config.max_total_tokens - 1} tokens). Either reduce the length of the input or "
                "increase --max-total-tokens."
            )
        if prompt_len == 0:
            raise ValueError("The input is empty.")

    def make_request(
        self,
        *,
        prompt_ids: list[int],
        thinking: bool,
        max_new_tokens: int | None,
        stop: str | Sequence[str] | None,
        ignore_eos: bool,
        rid: str | None,
        priority: int | None = None,
    ) -> Request:
        """Validate and plan a request (ValueError on a bad one); it is not queued yet."""
        self.validate_length(len(prompt_ids), max_new_tokens)
        if max_new_tokens is None:  # SGLang fills the rest of the context
            max_new_tokens = self.config.context_length - len(prompt_ids)
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        plan = plan_output(
            template=self.template,
            seed=self.config.sim_seed,
            prompt_ids=prompt_ids,
            thinking=thinking,
            max_new_tokens=max_new_tokens,
            stop=stops,
            ignore_eos=ignore_eos,
            answer_text=self.faults.answer_text,
        )
        req = Request(
            rid=rid or uuid.uuid4().hex,
            prompt_ids=prompt_ids,
            plan=plan,
            max_new_tokens=max_new_tokens,
            arrival=self.clock.now(),
            priority=priority or 0,  # ignored unless --enable-priority-scheduling, as in SGLang
        )
        stall = self.faults.stall()
        if stall:
            req.hold_until_real = time.monotonic() + stall
        return req

    def submit(self, req: Request) -> None:
        """Queue a planned request; raises QueueFullError when full or refused by fault."""
        self.ensure_started()
        if self.faults.refuse():
            self.stats.num_rejected += 1
            raise QueueFullError(QueueFullError.message)
        self.scheduler.submit(req)

    async def run_to_end(self, req: Request, receive: Receive, send: Send) -> bool:
        """Submit ``req`` and wait until it finishes, for a response that is not streamed: True when there is
        an answer to send; False when the queue refused it (503 already sent) or the client left (its request
        is then aborted a little later, as SGLang does)."""
        try:
            self.submit(req)
        except QueueFullError as e:
            await send_json(send, 503, error_body(str(e), "503", 503))
            return False
        watch = DisconnectWatch(receive, lambda: self.abort_later(req.rid))
        try:
            while not req.finished:
                await req.event.wait()
                req.event.clear()
        finally:
            watch.close()
        return not watch.disconnected

    def abort_later(self, rid: str) -> None:
        """Abort `rid` after the disconnect delay, unless it has finished by then (as SGLang does)."""
        asyncio.get_running_loop().call_later(self.abort_delay_real, self.scheduler.abort, rid)

    def meta_info(self, req: Request, completion_tokens: int) -> dict[str, Any]:
        """The `meta_info` SGLang attaches to native responses."""
        end = req.finished_at if req.finished_at is not None else self.scheduler.v
        return {
            "id": req.rid,
            "finish_reason": req.finish_reason,
            "prompt_tokens": len(req.prompt_ids),
            "weight_version": "default",
            "total_retractions": req.retractions,
            "completion_tokens": completion_tokens,
            "cached_tokens": req.cached_tokens,
            "e2e_latency": round(max(0.0, end - req.arrival), 6),
        }

    def model_info(self) -> dict[str, Any]:
        """GET /model_info."""
        return {
            "model_path": self.config.model_path,
            "tokenizer_path": self.config.tokenizer_path or self.config.model_path,
            "is_generation": True,
            "preferred_sampling_params": None,
            "weight_version": "default",
            "has_image_understanding": False,
            "has_audio_understanding": False,
            "model_type": "qwen3" if self.template.name == "qwen3" else "deepseek_v3",
            "architectures": [
                "Qwen3ForCausalLM" if self.template.name == "qwen3" else "DeepseekV3ForCausalLM"
            ],
        }

    def server_info(self) -> dict[str, Any]:
        """GET /server_info: the server args, scheduler info, internal states and version."""
        cfg = self.config
        args: dict[str, Any] = {
            f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if not f.name.startswith("sim_")
        }
        args.update(
            served_model_name=cfg.model_name,
            tokenizer_path=cfg.tokenizer_path or cfg.model_path,
            chat_template=self.template.name,
            tp_size=8,
            dp_size=1,
            pp_size=1,
            ep_size=1,
            skip_tokenizer_init=False,
            trust_remote_code=True,
            mem_fraction_static=0.88,
            schedule_conservativeness=1.0,
            stream_output=False,
            incremental_streaming_output=False,
            enable_dp_attention=False,
            disaggregation_mode="null",
            weight_version="default",
        )
        state = {
            "max_total_num_tokens": cfg.max_total_tokens,
            "max_req_input_len": min(cfg.context_length - 1, cfg.max_total_tokens - 1),
            "last_gen_throughput": self.stats.gen_throughput,
            "memory_usage": {"token_capacity": cfg.max_total_tokens},
        }
        return {
            **args,
            "max_total_num_tokens": cfg.max_total_tokens,
            "max_req_input_len": state["max_req_input_len"],
            "scheduler_info": state,
            "internal_states": [state],
            "version": SGLANG_VERSION,
            "simulated": True,
            "sim": {
                f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name.startswith("sim_")
            },
        }
