"""Production refuses published and low-entropy JWT secrets and a missing public URL; share links never
come from the Host header; the shipped Kubernetes files default to production with no usable secret."""

from __future__ import annotations

import secrets

import pytest

from backend.settings import load_settings
from tests.infra.infra_files import K8S, find, kustomize_build, load_yaml_documents

SECRETS = K8S / "secrets.example.yaml"

REAL = {
    "SURGE_ENV": "production",
    "SURGE_JWT_SECRET": secrets.token_urlsafe(36),
    "SURGE_DATABASE_URL": "postgresql+asyncpg://surge@db/surge",
    "SURGE_PUBLIC_URL": "https://chat.example.com",
}


def problems_with(**changes: str) -> list[str]:
    return load_settings({**REAL, **changes}).production_problems()


def test_a_real_production_configuration_has_no_problem():
    assert problems_with() == []


@pytest.mark.parametrize(
    "secret",
    [
        "change-me-to-at-least-32-random-characters-0123456789",  # the example file's, once
        "k" * 48,
        "abcabcabcabcabcabcabcabcabcabcabcabc",
        "short-but-random-Q9x!",
        "",
    ],
)
def test_production_refuses_published_short_and_low_entropy_secrets(secret):
    assert any("SURGE_JWT_SECRET" in problem for problem in problems_with(SURGE_JWT_SECRET=secret))


def test_production_requires_the_public_url():
    assert any("SURGE_PUBLIC_URL" in problem for problem in problems_with(SURGE_PUBLIC_URL=""))
    assert any(
        "SURGE_PUBLIC_URL" in problem for problem in problems_with(SURGE_PUBLIC_URL="chat.example.com")
    )


def test_the_example_secret_is_empty_and_refused():
    (surge,) = [d for d in load_yaml_documents(SECRETS) if d["metadata"]["name"] == "surge-secrets"]
    example = surge["stringData"]["SURGE_JWT_SECRET"]
    assert example == ""
    assert any("SURGE_JWT_SECRET" in problem for problem in problems_with(SURGE_JWT_SECRET=example))


def test_the_kubernetes_base_does_not_default_to_development():
    assert find(kustomize_build("base"), "ConfigMap", "surge-config")["data"]["SURGE_ENV"] == "production"


async def test_a_share_link_never_comes_from_the_host_header(client, alice):
    conversation = (await client.post("/v1/conversations", json={}, headers=alice.headers)).json()
    response = await client.post(
        f"/v1/conversations/{conversation['id']}/shares",
        headers={**alice.headers, "Host": "evil.example"},
    )
    assert response.status_code == 201, response.text
    url = response.json()["url"]
    assert "evil.example" not in url
    assert url.startswith("http://127.0.0.1:8000/")  # SURGE_PUBLIC_URL unset: `surge serve`'s address
