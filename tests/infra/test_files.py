"""Every YAML and JSON file of infra/ parses; the Dockerfiles and the nginx configuration do what
docs/deploy.md says they do."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.infra.infra_files import (
    COMPOSE_DIR,
    INFRA,
    ROOT,
    compose_project,
    dockerfile_instructions,
    dockerignore_patterns,
    dockerignored,
    infra_files,
    load_yaml_documents,
)

YAML_FILES = infra_files(".yaml", ".yml")
JSON_FILES = infra_files(".json")


def test_infra_has_the_files_of_issue_9() -> None:
    for relative in [
        "docker/backend.Dockerfile",
        "docker/sglang-sim.Dockerfile",
        "compose/compose.yaml",
        "compose/nginx.conf",
        "k8s/base/kustomization.yaml",
        "k8s/overlays/production/kustomization.yaml",
        "prometheus/prometheus.yml",
        "prometheus/alerts.yml",
        "grafana/dashboards/surge.json",
    ]:
        assert (INFRA / relative).is_file(), relative
    assert (ROOT / ".dockerignore").is_file()
    assert (ROOT / "docs" / "deploy.md").is_file()


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_yaml_parses(path: Path) -> None:
    documents = load_yaml_documents(path)
    assert documents, f"{path} is empty"
    assert all(isinstance(doc, dict) for doc in documents)


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_json_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


def test_there_are_files_to_parse() -> None:
    assert len(YAML_FILES) >= 20 and len(JSON_FILES) >= 1


# --- images ---


def _final_stage(path: Path) -> list:
    instructions = dockerfile_instructions(path)
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


@pytest.mark.parametrize("name", ["backend.Dockerfile", "sglang-sim.Dockerfile"])
def test_images_are_multi_stage_locked_and_unprivileged(name: str) -> None:
    path = INFRA / "docker" / name
    instructions = dockerfile_instructions(path)
    assert sum(i.keyword == "FROM" for i in instructions) >= 2, "multi-stage"
    runs = " ".join(i.arguments for i in instructions if i.keyword == "RUN")
    # Every uv sync installs exactly what the committed lock pins, and fails if it is stale.
    syncs = re.findall(r"uv sync[^&;]*", runs)
    assert syncs and all("--locked" in sync for sync in syncs), syncs
    final = _final_stage(path)
    users = [i.arguments for i in final if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), "the final stage runs as non-root"
    healthchecks = [i.arguments for i in final if i.keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert "/healthz" in healthchecks[0] if name.startswith("backend") else "/health'" in healthchecks[0]


def test_backend_image_serves_on_all_interfaces_and_migrates_separately() -> None:
    final = _final_stage(INFRA / "docker" / "backend.Dockerfile")
    (cmd,) = [json.loads(i.arguments) for i in final if i.keyword == "CMD"]
    assert cmd == ["surge", "serve", "--host", "0.0.0.0"]  # noqa: S104
    # `surge migrate` is a command of the same image, run by the compose `migrate` service and the
    # Kubernetes Job; serving never migrates there.
    project = compose_project("sim")
    assert project.services["migrate"]["command"] == ["surge", "migrate"]


@pytest.mark.parametrize("name", ["backend.Dockerfile", "sglang-sim.Dockerfile"])
def test_every_copied_file_exists_and_is_in_the_build_context(name: str) -> None:
    patterns = dockerignore_patterns()
    for instruction in dockerfile_instructions(INFRA / "docker" / name):
        if instruction.keyword != "COPY":
            continue
        args = [a for a in shlex.split(instruction.arguments) if not a.startswith("--")]
        if "--from=" in instruction.arguments:
            continue
        for source in args[:-1]:
            assert (ROOT / source).exists(), f"{name} copies {source}, which does not exist"
            assert not dockerignored(source, patterns), f".dockerignore keeps {source} out of {name}"


def test_dockerignore_keeps_state_and_secrets_out() -> None:
    patterns = dockerignore_patterns()
    for path in [".git", ".venv", ".surge/surge.sqlite3", "tests/conftest.py", ".env", "infra/k8s"]:
        assert dockerignored(path, patterns), path
    for path in ["backend/app.py", "uv.lock", "migrations/env.py", "loadtests/sglang_sim/app.py"]:
        assert not dockerignored(path, patterns), path


# --- the reverse proxy ---


def _nginx() -> str:
    text = (COMPOSE_DIR / "nginx.conf").read_text()
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def _seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)(s|m|h)?", value)
    assert match, value
    return int(match.group(1)) * {"s": 1, None: 1, "m": 60, "h": 3600}[match.group(2)]


def test_nginx_streams_sse_and_websockets() -> None:
    conf = _nginx()
    assert re.search(r"proxy_buffering\s+off;", conf)
    assert re.search(r"proxy_http_version\s+1\.1;", conf)
    assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade;", conf)
    assert re.search(r"proxy_set_header\s+Connection\s+\$connection_upgrade;", conf)
    assert re.search(r"map\s+\$http_upgrade\s+\$connection_upgrade", conf)
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        (value,) = re.findall(rf"{directive}\s+(\S+);", conf)
        assert _seconds(value) >= 3600, directive


def test_nginx_balances_over_the_backend_replicas() -> None:
    conf = _nginx()
    upstream = re.search(r"upstream\s+(\w+)\s*\{(.*?)\}", conf, re.S)
    assert upstream
    servers = set(re.findall(r"server\s+([\w.-]+:\d+)", upstream.group(2)))
    project = compose_project("sim")
    replicas = {
        f"{name}:{spec['command'][spec['command'].index('--port') + 1]}"
        for name, spec in project.services.items()
        if spec.get("command", [])[:2] == ["surge", "serve"]
    }
    assert len(replicas) == 2
    assert servers == replicas
    assert re.search(rf"proxy_pass\s+http://{upstream.group(1)};", conf)
    (listen,) = re.findall(r"listen\s+(\d+);", conf)
    published = [p.split(":")[-1] for p in project.services["proxy"]["ports"]]
    assert published == [listen]
