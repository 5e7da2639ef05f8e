"""Reading infra/ the way the tools that consume it do: YAML and JSON files, compose profiles, kustomize
output, PromQL expressions and Dockerfiles. Shared by the tests of tests/infra."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from backend.settings import GROUPS, env_name

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE_DIR = INFRA / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
K8S = INFRA / "k8s"
PROMETHEUS = INFRA / "prometheus"
DASHBOARD = INFRA / "grafana" / "dashboards" / "surge.json"

# The flags of SGLang's launch_server that shared/SGLANG.md lists (its "Real-server launch" line, plus
# --radix-eviction-policy from "RadixAttention"). A command line in infra/ may use no other: anything
# else is a flag Surge was never checked against. The simulator accepts the same names; its own flags
# start with --sim-.
SGLANG_SERVER_FLAGS = frozenset(
    {
        "--model-path",
        "--tp",
        "--trust-remote-code",
        "--reasoning-parser",
        "--enable-metrics",
        "--enable-cache-report",
        "--max-queued-requests",
        "--host",
        "--port",
        "--radix-eviction-policy",
    }
)
# What Surge relies on (SGLANG.md): reasoning split out, /metrics, cached_tokens in usage, a queue cap.
SGLANG_REQUIRED_FLAGS = frozenset(
    {"--reasoning-parser", "--enable-metrics", "--enable-cache-report", "--max-queued-requests"}
)
# sglang-router: the cache_aware knobs SGLANG.md describes, and the three every launch needs
# (`--worker-urls`, `--host`, `--port`: not in SGLANG.md, from `launch_router --help`, checked below
# against the installed router when it is there).
SGLANG_ROUTER_FLAGS = frozenset(
    {
        "--policy",
        "--balance-abs-threshold",
        "--balance-rel-threshold",
        "--cache-threshold",
        "--max-tree-size",
        "--eviction-interval-secs",
        "--worker-urls",
        "--host",
        "--port",
    }
)


# --- files ---------------------------------------------------------------------------------------


def infra_files(*suffixes: str) -> list[Path]:
    return sorted(path for path in INFRA.rglob("*") if path.is_file() and path.suffix in suffixes)


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# --- settings ------------------------------------------------------------------------------------


@cache
def surge_setting_names() -> frozenset[str]:
    """Every SURGE_* variable backend/settings.py reads."""
    return frozenset(
        env_name(group, field.name) for group in GROUPS.values() for field in msgspec.structs.fields(group)
    )


# --- command lines -------------------------------------------------------------------------------


def flags_of(argv: list[str]) -> list[str]:
    """The ``--flags`` of a command line (``--a=b`` counts as ``--a``)."""
    return [arg.split("=", 1)[0] for arg in argv if arg.startswith("--")]


def flag_value(argv: list[str], flag: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg == flag and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def flag_values(argv: list[str], flag: str) -> list[str]:
    """The values of a flag that takes several (``--worker-urls a b``)."""
    if flag not in argv:
        return []
    values = []
    for arg in argv[argv.index(flag) + 1 :]:
        if arg.startswith("--"):
            break
        values.append(arg)
    return values


def argv_of(command: Any) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


# --- compose -------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: Any, environ: Mapping[str, str]) -> Any:
    """Compose's variable substitution: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
    ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}`` (the forms compose.yaml may use)."""
    if isinstance(value, dict):
        return {key: interpolate(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environ) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("plain"):
            return environ.get(match.group("plain"), "")
        expression = match.group("braced")
        for operator in (":-", "-", ":?", "?"):
            name, found, rest = expression.partition(operator)
            if found and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                present = name in environ and (environ[name] != "" or ":" not in operator)
                if present:
                    return environ[name]
                if "?" in operator:
                    raise ValueError(f"compose variable {name} is required: {rest}")
                return rest
        return environ.get(expression, "")

    return _INTERPOLATION.sub(substitute, value)


def read_env_file(path: Path) -> dict[str, str]:
    """A compose env_file: ``KEY=VALUE`` lines, ``#`` comments, values optionally quoted."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


@dataclass
class ComposeProject:
    """compose.yaml as `docker compose --profile ... config` resolves it: interpolated, the services of
    the chosen profiles only, env_file merged into environment."""

    services: dict[str, dict[str, Any]]
    raw: dict[str, Any]
    profiles: tuple[str, ...]
    environ: dict[str, str] = field(default_factory=dict)

    def environment(self, service: str) -> dict[str, str]:
        spec = self.services[service]
        env: dict[str, str] = {}
        env_files = spec.get("env_file") or []
        for entry in [env_files] if isinstance(env_files, str) else env_files:
            path = entry if isinstance(entry, str) else entry["path"]
            env.update(read_env_file(COMPOSE_DIR / path))
        declared = spec.get("environment") or {}
        if isinstance(declared, list):
            declared = dict(item.split("=", 1) for item in declared)
        env.update({key: "" if value is None else str(value) for key, value in declared.items()})
        return env

    def names(self, service: str) -> set[str]:
        """The DNS names a service answers to on the default network: its name and its aliases."""
        names = {service}
        networks = self.services[service].get("networks") or {}
        if isinstance(networks, dict):
            for network in networks.values():
                names.update((network or {}).get("aliases") or [])
        return names

    def resolve(self, host: str) -> list[str]:
        return [service for service in self.services if host in self.names(service)]


def compose_project(*profiles: str, environ: Mapping[str, str] | None = None) -> ComposeProject:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    resolved = interpolate(raw, dict(environ or {}))
    services = {
        name: spec
        for name, spec in resolved["services"].items()
        if not spec.get("profiles") or set(spec["profiles"]) & set(profiles)
    }
    return ComposeProject(services=services, raw=resolved, profiles=profiles, environ=dict(environ or {}))


def compose_cli() -> list[str] | None:
    """A Docker Compose v2 client: the `docker compose` plugin, or a standalone `docker-compose` v2."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for candidate in candidates:
        try:
            result = subprocess.run(
                [*candidate, "version", "--short"], capture_output=True, text=True, timeout=20, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0 and result.stdout.strip().lstrip("v").startswith("2"):
            return candidate
    return None


def compose_config(
    cli: list[str], *profiles: str, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`docker compose config --format json` for these profiles (it needs no Docker engine)."""
    args = [*cli, "-f", str(COMPOSE_FILE)]
    for profile in profiles:
        args += ["--profile", profile]
    env = {key: value for key, value in os.environ.items() if not key.startswith("COMPOSE_")}
    env.update(environ or {})
    result = subprocess.run(
        [*args, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


# --- kustomize -----------------------------------------------------------------------------------


def kustomize_cli() -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


@cache
def kustomize_build(directory: str) -> list[dict[str, Any]]:
    cli = kustomize_cli()
    if cli is None:
        pytest.skip("neither kubectl nor kustomize is installed: kustomize overlays not rendered")
    result = subprocess.run(
        [*cli, str(K8S / directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, its pod template) for every Deployment, StatefulSet and Job."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield obj, obj["spec"]["template"]


# --- prometheus ----------------------------------------------------------------------------------


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(
            "promtool is not installed (Debian: apt-get install prometheus): Prometheus files not checked by it"
        )
    return path


def run_promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


# --- PromQL --------------------------------------------------------------------------------------

# Words of PromQL that look like metric names.
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
     "offset", "inf", "nan", "atan2"}
)  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR = re.compile(r"(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)\s*(?P<labels>\{[^}]*\})?(?P<call>\s*\()?")
_LABEL_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: frozenset[str]


def selectors(expr: str) -> list[Selector]:
    """The metrics a PromQL expression reads, with the label names its matchers use."""
    text = _STRING.sub('""', expr)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    found = []
    for match in _SELECTOR.finditer(text):
        name = match.group("name")
        if match.group("call") and not match.group("labels"):
            continue  # a function
        if name in _KEYWORDS or re.fullmatch(r"\d.*", name):
            continue
        labels = frozenset(_LABEL_NAME.findall(match.group("labels") or ""))
        found.append(Selector(name, labels))
    return found


def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a Grafana dashboard: panel targets and query variables."""
    exprs: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(target["expr"] for target in panel.get("targets", []) if target.get("expr"))
            walk(panel.get("panels", []))

    walk(dashboard.get("panels", []))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            query = query["query"] if isinstance(query, dict) else query
            match = re.fullmatch(r"\s*label_values\((?P<expr>.+),\s*[A-Za-z_]+\)\s*", query)
            exprs.append(match.group("expr") if match else query)
    return exprs


def grafana_to_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced, as Grafana sends it to Prometheus."""
    return expr.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$model", ".*")


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(PROMETHEUS / "alerts.yml")["groups"] for rule in group["rules"]]


# --- Dockerfiles ---------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str
    stage: int


def dockerfile_instructions(path: Path) -> list[Instruction]:
    """A Dockerfile's instructions (continuation lines joined, comments dropped), with their stage."""
    logical: list[str] = []
    current = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    stage = -1
    instructions = []
    for text in logical:
        keyword, _, arguments = text.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), arguments.strip(), stage))
    return instructions


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def dockerignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``relative`` (or a folder above it) out of the build context.
    Handles what .dockerignore uses: ``*``, ``**`` and plain paths (no ``!`` exceptions)."""
    assert not any(p.startswith("!") for p in patterns), "exceptions are not handled here"
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        regex = re.escape(pattern.strip("/"))
        regex = regex.replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            return True
    return False
