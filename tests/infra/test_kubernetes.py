"""infra/k8s: every object valid against the Kubernetes schemas (kubernetes-validate ships them, so
this runs offline), the kustomize overlays rendered by kubectl's kustomize, and the objects consistent
with each other and with Surge: probes, graceful shutdown, GPUs, shared memory, configuration."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest

from backend.settings import load_settings
from tests.infra.infra_files import (
    K8S,
    SGLANG_REQUIRED_FLAGS,
    SGLANG_SERVER_FLAGS,
    find,
    flag_value,
    flags_of,
    kustomize_build,
    load_yaml_documents,
    pod_specs,
    surge_setting_names,
)

# The Kubernetes version the schemas are checked against: kubectl 1.32's, a version every managed
# Kubernetes still supports. Strict: a misspelt or misplaced field is an error, not ignored.
KUBERNETES_VERSION = "1.32.0"
RENDERED = ["base", "overlays/production"]
SECRETS = K8S / "secrets.example.yaml"
# Files that are not Kubernetes objects: kustomize's own, and the overlay's partial patches.
NOT_OBJECTS = {"kustomization.yaml"}


def _manifest_files() -> list[Path]:
    return sorted(path for path in [*K8S.glob("base/*.yaml"), SECRETS] if path.name not in NOT_OBJECTS)


def _validate(obj: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(p) for p in error.path)
        pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {error.message}")
    except kubernetes_validate.SchemaNotFoundError as error:
        pytest.fail(error.message)


@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_each_manifest_is_a_valid_kubernetes_object(path: Path) -> None:
    documents = load_yaml_documents(path)
    assert documents
    for obj in documents:
        _validate(obj)


@pytest.mark.parametrize("overlay", RENDERED)
def test_rendered_overlay_is_valid(overlay: str) -> None:
    objects = kustomize_build(overlay)
    assert len(objects) >= 12
    for obj in objects:
        _validate(obj)


def test_every_base_file_is_a_kustomize_resource() -> None:
    (kustomization,) = load_yaml_documents(K8S / "base" / "kustomization.yaml")
    files = {p.name for p in (K8S / "base").glob("*.yaml")} - NOT_OBJECTS
    assert set(kustomization["resources"]) == files
    (production,) = load_yaml_documents(K8S / "overlays" / "production" / "kustomization.yaml")
    patches = {p["path"] for p in production["patches"]}
    local = {p.name for p in (K8S / "overlays" / "production").glob("*.yaml")} - NOT_OBJECTS
    assert patches | {r for r in production["resources"] if not r.startswith("..")} == local


# --- consistency of the rendered objects ---


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _secrets() -> dict[str, set[str]]:
    return {doc["metadata"]["name"]: set(doc["stringData"]) for doc in load_yaml_documents(SECRETS)}


def _container(template: dict[str, Any], name: str) -> dict[str, Any]:
    (container,) = [c for c in template["spec"]["containers"] if c["name"] == name]
    return container


def _environment(objects: list[dict[str, Any]], container: dict[str, Any], fcm_file: str) -> dict[str, str]:
    """The environment a container gets, with the example Secrets' values."""
    env: dict[str, str] = {}
    secrets = {d["metadata"]["name"]: d["stringData"] for d in load_yaml_documents(SECRETS)}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            env.update(secrets[source["secretRef"]["name"]])
    env.update({item["name"]: item["value"] for item in container.get("env", []) if "value" in item})
    if "SURGE_FCM_CREDENTIALS_FILE" in env:
        env["SURGE_FCM_CREDENTIALS_FILE"] = fcm_file
    return env


@pytest.mark.parametrize("overlay", RENDERED)
def test_references_resolve(overlay: str) -> None:
    objects = kustomize_build(overlay)
    secrets = _secrets()
    config_maps = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    claims = {o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim"}
    accounts = {o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"}
    for workload, template in pod_specs(objects):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = template["spec"]
        assert spec.get("serviceAccountName", "default") in accounts | {"default"}, where
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, where
                else:
                    assert source["secretRef"]["name"] in secrets, where
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets.get(ref["name"], set()), where
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, where
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, where
        mounts = {m["name"] for c in spec["containers"] for m in c.get("volumeMounts", [])}
        assert mounts <= {v["name"] for v in spec.get("volumes", [])}, where
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    for service in (o for o in objects if o["kind"] == "Service"):
        matched = [
            w
            for w in workloads
            if _labels_match(service["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(matched) == 1, service["metadata"]["name"]
        ports = {
            p["name"]
            for c in matched[0]["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports
    for budget in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(_labels_match(selector, w["spec"]["template"]["metadata"]["labels"]) for w in workloads)
    for autoscaler in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
        target = autoscaler["spec"]["scaleTargetRef"]
        deployment = find(objects, target["kind"], target["name"])
        # The autoscaler owns the count: a replicas field would reset it on every apply.
        assert "replicas" not in deployment["spec"]
        assert all(
            "cpu" in c["resources"]["requests"] for c in deployment["spec"]["template"]["spec"]["containers"]
        )
    for ingress in (o for o in objects if o["kind"] == "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = find(objects, "Service", backend["name"])
                assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize("overlay", RENDERED)
def test_backend_probes_shutdown_and_security(overlay: str) -> None:
    objects = kustomize_build(overlay)
    deployment = find(objects, "Deployment", "surge-backend")
    spec = deployment["spec"]["template"]["spec"]
    backend = _container(deployment["spec"]["template"], "backend")
    assert backend["command"][:2] == ["surge", "serve"] and "0.0.0.0" in backend["command"]  # noqa: S104
    assert backend["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert backend["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pre_stop = backend["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace = float(find(objects, "ConfigMap", "surge-config")["data"]["SURGE_SHUTDOWN_GRACE_S"])
    # preStop, then streams finish (uvicorn), then turns finish (the runner), each up to the grace.
    assert spec["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + 2 * grace + 5
    assert grace >= 60, "long enough for a stream to finish"
    security = spec["securityContext"]
    assert security["runAsNonRoot"] and security["runAsUser"] != 0
    assert backend["securityContext"]["allowPrivilegeEscalation"] is False
    assert backend["securityContext"]["readOnlyRootFilesystem"] is True
    assert backend["resources"]["requests"] and backend["resources"]["limits"]["memory"]
    job = find(objects, "Job", "surge-migrate")
    migrate = job["spec"]["template"]["spec"]["containers"][0]
    assert migrate["command"] == ["surge", "migrate"] and migrate["image"] == backend["image"]
    assert job["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]


@pytest.mark.parametrize("overlay", RENDERED)
def test_ingress_is_set_up_for_streaming(overlay: str) -> None:
    ingress = find(kustomize_build(overlay), "Ingress", "surge")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 3600
    assert ingress["spec"]["ingressClassName"] == "nginx"


@pytest.mark.parametrize("overlay", RENDERED)
def test_sglang_servers_get_gpus_shared_memory_and_surge_flags(overlay: str) -> None:
    objects = kustomize_build(overlay)
    statefulset = find(objects, "StatefulSet", "sglang")
    template = statefulset["spec"]["template"]
    sglang = _container(template, "sglang")
    argv = [*sglang["command"], *sglang["args"]]
    assert argv[:3] == ["python3", "-m", "sglang.launch_server"]
    flags = set(flags_of(argv))
    assert flags <= SGLANG_SERVER_FLAGS, sorted(flags - SGLANG_SERVER_FLAGS)
    assert flags >= SGLANG_REQUIRED_FLAGS
    assert str(sglang["resources"]["limits"]["nvidia.com/gpu"]) == "8" == flag_value(argv, "--tp")
    assert sglang["readinessProbe"]["httpGet"]["path"] == "/health"
    (shm,) = [m for m in sglang["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == shm["name"]]
    assert volume["emptyDir"]["medium"] == "Memory"
    port = flag_value(argv, "--port")
    assert {p["containerPort"] for p in sglang["ports"]} == {int(port or 0)}
    service = find(objects, "Service", statefulset["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None", "headless: one DNS name per server"


@pytest.mark.parametrize("overlay", RENDERED)
def test_surge_models_list_every_sglang_pod(overlay: str) -> None:
    objects = kustomize_build(overlay)
    statefulset = find(objects, "StatefulSet", "sglang")
    service = statefulset["spec"]["serviceName"]
    argv = [
        *_container(statefulset["spec"]["template"], "sglang")["command"],
        *_container(statefulset["spec"]["template"], "sglang")["args"],
    ]
    config = find(objects, "ConfigMap", "surge-config")["data"]
    (model,) = json.loads(config["SURGE_MODELS"])
    expected = [
        f"http://sglang-{i}.{service}:{flag_value(argv, '--port')}"
        for i in range(statefulset["spec"]["replicas"])
    ]
    assert model["workers"] == expected
    assert model["upstream_model"] == flag_value(argv, "--model-path")
    for url in model["workers"]:
        assert urlsplit(url).hostname and urlsplit(url).hostname.endswith(f".{service}")


@pytest.mark.parametrize("overlay", RENDERED)
def test_surge_accepts_its_configuration(overlay: str, tmp_path: Path) -> None:
    objects = kustomize_build(overlay)
    fcm = tmp_path / "service-account.json"
    fcm.write_text("{}")
    checked = []
    for workload, template in pod_specs(objects):
        for container in template["spec"]["containers"]:
            if container["command"][:1] != ["surge"]:
                continue
            checked.append(container["command"][:2])
            env = _environment(objects, container, str(fcm))
            unknown = {k for k in env if k.startswith("SURGE_") or k.isupper()} - surge_setting_names()
            assert not unknown, f"{workload['metadata']['name']}: not Surge settings: {sorted(unknown)}"
            # The example Secret leaves the JWT secret empty: refused until the operator sets a real one.
            unfilled = load_settings(env).production_problems()
            assert len(unfilled) == 1 and "SURGE_JWT_SECRET" in unfilled[0], unfilled
            settings = load_settings({**env, "SURGE_JWT_SECRET": secrets.token_urlsafe(36)})
            assert settings.configuration_problems() == []
            assert settings.production_problems() == []
            assert settings.database.auto_migrate is False
            mounted = [m["mountPath"] for m in container.get("volumeMounts", [])]
            if container["command"][:2] == ["surge", "serve"]:
                fcm_path = find(objects, "ConfigMap", "surge-config")["data"]["SURGE_FCM_CREDENTIALS_FILE"]
                assert str(Path(fcm_path).parent) in mounted
                (volume,) = [
                    v
                    for v in template["spec"]["volumes"]
                    if v.get("secret", {}).get("secretName") == "surge-fcm"
                ]
                assert Path(fcm_path).name in _secrets()["surge-fcm"] and volume
    # The loop above skips containers that are not Surge's: make sure it did not skip them all.
    assert ["surge", "serve"] in checked and ["surge", "migrate"] in checked, checked


def test_production_overlay_raises_the_numbers() -> None:
    base = kustomize_build("base")
    production = kustomize_build("overlays/production")
    assert find(production, "ConfigMap", "surge-config")["data"]["SURGE_ENV"] == "production"
    for kind, name, path in [
        ("HorizontalPodAutoscaler", "surge-backend", ("spec", "minReplicas")),
        ("HorizontalPodAutoscaler", "surge-backend", ("spec", "maxReplicas")),
        ("StatefulSet", "sglang", ("spec", "replicas")),
    ]:
        low, high = find(base, kind, name), find(production, kind, name)
        for key in path:
            low, high = low[key], high[key]
        assert high > low, (kind, name, path)

    def cpu(objects: list[dict[str, Any]]) -> float:
        value = _container(find(objects, "Deployment", "surge-backend")["spec"]["template"], "backend")[
            "resources"
        ]["requests"]["cpu"]
        return float(value[:-1]) / 1000 if str(value).endswith("m") else float(value)

    assert cpu(production) > cpu(base)
    assert all(o["metadata"].get("namespace") == "surge" for o in production if o["kind"] != "Namespace")
    images = {c["image"] for _, t in pod_specs(production) for c in t["spec"]["containers"]}
    assert all(re.search(r":[\w.-]+$", image) and not image.endswith(":latest") for image in images)
    assert find(production, "Ingress", "surge")["spec"]["tls"]
