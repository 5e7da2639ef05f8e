"""infra/compose/compose.yaml: `docker compose config` where a Compose v2 client is installed, and in
any case our own reading of it (tests/infra/infra_files.py resolves profiles, variables and env files as
Compose does): services, dependencies, Surge's settings, where SURGE_MODELS points, health checks,
ports, and SGLang command lines that use only the flags shared/SGLANG.md lists."""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from backend.settings import load_settings
from loadtests.sglang_sim.config import parse_args as parse_sim_args
from tests.infra.infra_files import (
    COMPOSE_DIR,
    PROMETHEUS,
    SGLANG_REQUIRED_FLAGS,
    SGLANG_ROUTER_FLAGS,
    SGLANG_SERVER_FLAGS,
    ComposeProject,
    argv_of,
    compose_cli,
    compose_config,
    compose_project,
    flag_value,
    flag_values,
    flags_of,
    load_yaml,
    surge_setting_names,
)

ROUTER_ENV = {"MODELS_ENV_FILE": "models.router.env"}
# (profiles, interpolation variables): the stacks docs/deploy.md tells people to run.
STACKS = {
    "sim": (("sim",), {}),
    "gpu": (("gpu",), {}),
    "sim+router": (("sim", "router"), ROUTER_ENV),
    "gpu+router": (("gpu", "router"), ROUTER_ENV),
}


def _is_surge(spec: dict[str, Any]) -> bool:
    return argv_of(spec.get("command"))[:1] == ["surge"]


def _replicas(project: ComposeProject) -> list[str]:
    return [
        name
        for name, spec in project.services.items()
        if argv_of(spec.get("command"))[:2] == ["surge", "serve"]
    ]


def _sglang_servers(project: ComposeProject) -> dict[str, list[str]]:
    """GPU workers: the arguments after `-m sglang.launch_server`."""
    servers = {}
    for name, spec in project.services.items():
        argv = argv_of(spec.get("command"))
        if "sglang.launch_server" in argv:
            servers[name] = argv[argv.index("sglang.launch_server") + 1 :]
    return servers


def _simulators(project: ComposeProject) -> dict[str, list[str]]:
    return {
        name: argv_of(spec.get("command"))
        for name, spec in project.services.items()
        if "sglang-sim" in spec.get("build", {}).get("dockerfile", "") and not spec.get("entrypoint")
    }


def _router(project: ComposeProject) -> list[str] | None:
    spec = project.services.get("sglang-router")
    return None if spec is None else argv_of(spec.get("command"))


def _workers(project: ComposeProject) -> dict[str, list[str]]:
    return {**_sglang_servers(project), **_simulators(project)}


# --- the real client ---


@pytest.fixture(scope="module")
def cli() -> list[str]:
    found = compose_cli()
    if found is None:
        pytest.skip(
            "no Docker Compose v2 client (docker compose / docker-compose): compose.yaml checked by our own reader only"
        )
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_docker_compose_config_accepts_every_stack(cli: list[str], stack: str) -> None:
    profiles, environ = STACKS[stack]
    config = compose_config(cli, *profiles, environ=environ)
    ours = compose_project(*profiles, environ=environ)
    # Our reader sees the same services and the same environment as Compose itself, so the checks
    # below hold for what Compose would run.
    assert set(config["services"]) == set(ours.services)
    for name, spec in config["services"].items():
        assert {k: str(v) for k, v in (spec.get("environment") or {}).items()} == ours.environment(name), name
        assert argv_of(spec.get("command")) == argv_of(ours.services[name].get("command")), name


# --- our own reading ---


@pytest.mark.parametrize("stack", STACKS)
def test_dependencies_exist_and_are_healthy_or_done(stack: str) -> None:
    project = compose_project(*STACKS[stack][0], environ=STACKS[stack][1])
    for name, spec in project.services.items():
        depends = spec.get("depends_on") or {}
        for target, condition in depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends):
            assert target in project.services, f"{name} depends on {target}, which {stack} does not run"
            wanted = (condition or {}).get("condition", "service_started")
            if wanted == "service_healthy":
                assert project.services[target].get("healthcheck"), f"{target} has no health check"
            if wanted == "service_completed_successfully":
                assert project.services[target].get("restart") == "no", f"{target} is a one-shot job"


def test_each_stack_runs_the_parts_of_issue_9() -> None:
    sim = compose_project("sim")
    assert {"postgres", "redis", "migrate", "proxy", "prometheus", "grafana"} <= set(sim.services)
    assert len(_replicas(sim)) == 2
    assert len(_simulators(sim)) == 2 and not _sglang_servers(sim) and _router(sim) is None
    gpu = compose_project("gpu")
    assert len(_sglang_servers(gpu)) == 2 and not _simulators(gpu)
    assert _router(compose_project("sim", "router")) is not None


@pytest.mark.parametrize("stack", STACKS)
def test_surge_gets_only_real_settings_and_accepts_them(stack: str) -> None:
    project = compose_project(*STACKS[stack][0], environ=STACKS[stack][1])
    surge_services = [name for name, spec in project.services.items() if _is_surge(spec)]
    assert surge_services
    for name in surge_services:
        env = project.environment(name)
        unknown = set(env) - surge_setting_names()
        assert not unknown, f"{name} sets variables Surge does not read: {sorted(unknown)}"
        settings = load_settings(env)
        assert settings.configuration_problems() == []
        assert not settings.is_sqlite and settings.redis.url
    for name in _replicas(project):
        env = project.environment(name)
        assert env["SURGE_DATABASE_AUTO_MIGRATE"] == "false", "replicas never migrate; the migrate job does"
        assert (
            project.services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )
    # With SURGE_ENV=production (what docs/deploy.md says to set with a real secret), Surge starts.
    production = compose_project(
        *STACKS[stack][0],
        environ={
            **STACKS[stack][1],
            "SURGE_ENV": "production",
            "SURGE_JWT_SECRET": secrets.token_urlsafe(36),
        },
    )
    for name in _replicas(production):
        assert load_settings(production.environment(name)).production_problems() == []


@pytest.mark.parametrize("stack", STACKS)
def test_surge_models_point_at_workers_this_stack_runs(stack: str) -> None:
    project = compose_project(*STACKS[stack][0], environ=STACKS[stack][1])
    for name in _replicas(project):
        for spec in load_settings(project.environment(name)).inference.models:
            assert spec.workers
            for url in spec.workers:
                parts = urlsplit(url)
                targets = project.resolve(parts.hostname or "")
                assert len(targets) == 1, f"{url} resolves to {targets} in {stack}"
                argv = argv_of(project.services[targets[0]].get("command"))
                assert flag_value(argv, "--port") == str(parts.port), url
                assert flag_value(argv, "--host") == "0.0.0.0"  # noqa: S104
                if targets[0] != "sglang-router":
                    assert flag_value(argv, "--model-path") == spec.served_name, (
                        f"{targets[0]} serves another model than SURGE_MODELS names"
                    )


def test_the_router_fronts_the_workers_of_its_stack() -> None:
    for stack in ("sim+router", "gpu+router"):
        project = compose_project(*STACKS[stack][0], environ=STACKS[stack][1])
        argv = _router(project)
        assert argv is not None
        urls = flag_values(argv, "--worker-urls")
        assert len(urls) == 2
        for url in urls:
            (target,) = project.resolve(urlsplit(url).hostname or "")
            assert target in _workers(project)
        # Without the router, Surge itself spreads turns over the same two workers.
        plain = compose_project(STACKS[stack][0][0])
        (replica,) = _replicas(plain)[:1]
        assert sorted(load_settings(plain.environment(replica)).inference.models[0].workers) == sorted(urls)


def test_sglang_command_lines_use_only_flags_sglang_md_lists() -> None:
    gpu = _sglang_servers(compose_project("gpu"))
    sims = _simulators(compose_project("sim"))
    assert gpu and sims
    for name, argv in gpu.items():
        flags = set(flags_of(argv))
        assert flags <= SGLANG_SERVER_FLAGS, f"{name}: {sorted(flags - SGLANG_SERVER_FLAGS)}"
        assert flags >= SGLANG_REQUIRED_FLAGS, f"{name} lacks {sorted(SGLANG_REQUIRED_FLAGS - flags)}"
        assert flag_value(argv, "--reasoning-parser") == "deepseek-r1"
    for name, argv in sims.items():
        flags = {f for f in flags_of(argv) if not f.startswith("--sim-")}
        assert flags <= SGLANG_SERVER_FLAGS, f"{name}: {sorted(flags - SGLANG_SERVER_FLAGS)}"
        assert flags >= SGLANG_REQUIRED_FLAGS, f"{name} lacks {sorted(SGLANG_REQUIRED_FLAGS - flags)}"
        config = parse_sim_args(argv)  # the simulator accepts them (argparse exits on an unknown flag)
        assert config.enable_metrics and config.enable_cache_report and config.max_queued_requests == 256
    # The simulators stand in for the GPU workers: the same SGLang flags with the same values.
    strip_sim = [
        [a for i, a in enumerate(argv) if not a.startswith("--sim-") and not argv[i - 1].startswith("--sim-")]
        for argv in sims.values()
    ]
    assert all(argv == next(iter(gpu.values())) for argv in [*gpu.values(), *strip_sim])


def test_router_command_line_uses_known_flags() -> None:
    argv = _router(compose_project("sim", "router"))
    assert argv is not None
    flags = set(flags_of(argv))
    assert flags <= SGLANG_ROUTER_FLAGS, sorted(flags - SGLANG_ROUTER_FLAGS)
    assert flag_value(argv, "--policy") == "cache_aware"
    pytest.importorskip("sglang_router", reason="sglang-router (uv group loadtests) is not installed")
    help_text = subprocess.run(
        [sys.executable, "-m", "sglang_router.launch_router", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    for flag in flags:
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text), f"the router has no {flag}"


def test_gpu_workers_reserve_a_gpu_and_shared_memory() -> None:
    project = compose_project("gpu")
    device_ids = []
    for name in _sglang_servers(project):
        spec = project.services[name]
        (device,) = spec["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
        device_ids += device["device_ids"]
        size = re.fullmatch(r"(\d+)([gm])b?", str(spec["shm_size"]).lower())
        assert size and int(size.group(1)) * (1024 if size.group(2) == "g" else 1) >= 1024, (
            "shm of 1 GB or more"
        )
        assert flag_value(argv_of(spec["command"]), "--tp") in (None, str(len(device["device_ids"])))
    assert len(device_ids) == len(set(device_ids)), "each GPU serves one worker"


@pytest.mark.parametrize("stack", STACKS)
def test_long_running_services_have_health_checks_and_free_ports(stack: str) -> None:
    project = compose_project(*STACKS[stack][0], environ=STACKS[stack][1])
    published = []
    for name, spec in project.services.items():
        if spec.get("restart") != "no" and name != "grafana":
            assert spec.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for port in spec.get("ports", []):
            published.append(str(port).split(":")[0])
    assert len(published) == len(set(published)), "two services publish the same host port"
    for name in _workers(project):
        test = " ".join(project.services[name]["healthcheck"]["test"])
        assert "/health'" in test or "/health " in test
    for name in _replicas(project):
        assert "/healthz" in " ".join(project.services[name]["healthcheck"]["test"])


def test_replicas_get_time_to_finish_streams() -> None:
    project = compose_project("sim")
    for name in _replicas(project):
        grace = float(project.environment(name)["SURGE_SHUTDOWN_GRACE_S"])
        stop = re.fullmatch(r"(\d+)s", project.services[name]["stop_grace_period"])
        assert stop
        # uvicorn lets connections finish for the grace period, then the runner lets turns finish for
        # as long again (backend/cli.py, backend/chat/runner.py).
        assert int(stop.group(1)) >= 2 * grace + 5


def test_forwarded_addresses_are_believed_from_the_proxy_only() -> None:
    project = compose_project("sim")
    proxy_ip = project.services["proxy"]["networks"]["default"]["ipv4_address"]
    (subnet,) = [c["subnet"] for c in project.raw["networks"]["default"]["ipam"]["config"]]
    assert ipaddress.ip_address(proxy_ip) in ipaddress.ip_network(subnet)
    for name in _replicas(project):
        assert project.environment(name)["SURGE_TRUSTED_PROXIES"] == proxy_ip


@pytest.mark.parametrize("stack", ["sim", "gpu"])
def test_prometheus_scrapes_what_the_stack_runs(stack: str) -> None:
    project = compose_project(stack)
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    targets = {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }
    assert sorted(targets["surge"]) == sorted(f"{name}:8000" for name in _replicas(project))
    for target in targets["sglang"]:
        host, port = target.split(":")
        (service,) = project.resolve(host)
        argv = _workers(project)[service]
        assert flag_value(argv, "--port") == port and "--enable-metrics" in argv
    mounts = {volume.split(":")[1] for volume in project.services["prometheus"]["volumes"] if ":" in volume}
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml"} <= mounts


def test_grafana_is_provisioned_with_the_datasource_and_dashboard() -> None:
    project = compose_project("sim")
    mounts = dict(reversed(volume.split(":")[:2]) for volume in project.services["grafana"]["volumes"])
    datasource = load_yaml(
        project_path(mounts["/etc/grafana/provisioning"]) / "datasources" / "prometheus.yml"
    )
    (source,) = datasource["datasources"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in project.services
    provider = load_yaml(project_path(mounts["/etc/grafana/provisioning"]) / "dashboards" / "surge.yml")
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboards = project_path(mounts["/var/lib/grafana/dashboards"])
    dashboard = json.loads((dashboards / "surge.json").read_text())
    assert dashboard["templating"]["list"][0]["current"]["value"] == source["uid"]


def project_path(relative: str) -> Path:
    return (COMPOSE_DIR / relative).resolve()
