"""How Surge serves the web app: its page and files with a strict Content-Security-Policy, nothing
fetched from another origin, the API, docs and error envelope untouched, and SURGE_WEB_ENABLED."""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser
from pathlib import Path

from backend.app import create_app
from backend.web.routes import STATIC
from tests.conftest import error_of, make_settings, serve, sign_up


class Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


async def test_the_page_and_its_files_carry_a_strict_content_security_policy(client):
    page = await client.get("/")
    share_page = await client.get(f"/s/{uuid.uuid4()}")
    script = await client.get("/assets/js/main.js")
    style = await client.get("/assets/app.css")
    for response in (page, share_page, script, style):
        assert response.status_code == 200, response.request.url
        csp = csp_directives(response.headers["content-security-policy"])
        assert csp["default-src"] == ["'self'"]
        assert csp["script-src"] == ["'self'"], "no inline script, no eval, no other origin"
        assert csp["object-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
        assert response.headers["x-content-type-options"] == "nosniff"
    assert page.headers["content-type"].startswith("text/html")
    assert share_page.text == page.text
    assert script.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    assert style.headers["content-type"].startswith("text/css")

    parser = Tags()
    parser.feed(page.text)
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts and all(attrs.get("src", "").startswith("/assets/") for attrs in scripts)
    assert "<script>" not in page.text and "</script>" in page.text  # every script has a src, none inline
    for _tag, attrs in parser.tags:
        assert not [name for name in attrs if name.startswith("on")], "no inline event handlers"


def test_no_file_of_the_app_loads_anything_from_another_origin():
    files = [path for path in STATIC.rglob("*") if path.is_file()]
    assert {path.suffix for path in files} == {".html", ".js", ".css"}
    for path in files:
        text = path.read_text()
        imports = re.findall(r"""(?:import|from)\s*\(?\s*["']([^"']+)["']""", text)
        assert all(target.startswith("./") for target in imports), (path, imports)
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path
        assert not re.search(r"url\(\s*['\"]?(https?:)?//|@import", text), path
        if path.suffix == ".js":
            assert "innerHTML" not in text and "outerHTML" not in text and "insertAdjacentHTML" not in text, (
                path
            )
            assert "eval(" not in text and "new Function" not in text, path


async def test_the_api_the_docs_and_unknown_paths_answer_as_before(client, alice):
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    # The docs page loads Scalar from its CDN: the app's policy must not be applied to it.
    assert "content-security-policy" not in docs.headers
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/" not in schema["paths"] and not [
        path for path in schema["paths"] if path.startswith(("/s/", "/assets"))
    ]
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/metrics")).status_code == 200
    assert (await client.get("/v1/me", headers=alice.headers)).json()["email"] == "alice@example.com"
    for path in ("/v1/nope", "/v1/conversations/x/y/z", "/assets/nope.js", "/s/not-an-id", "/nope"):
        missing = await client.get(path)
        assert missing.status_code == 404, path
        assert error_of(missing)["code"] == "not_found"


async def test_share_links_open_the_web_page(client, alice, settings):
    conversation = (
        await client.post("/v1/conversations", json={"title": "Shared"}, headers=alice.headers)
    ).json()
    share = (
        await client.post(f"/v1/conversations/{conversation['id']}/shares", headers=alice.headers)
    ).json()
    # SURGE_PUBLIC_URL unset (not production): the address `surge serve` listens on, never the Host header.
    assert share["url"] == f"{settings.public_base_url}/s/{share['id']}"
    assert (await client.get(f"/s/{share['id']}")).status_code == 200


async def test_with_the_web_app_off_nothing_is_served_at_the_root_and_shares_link_the_api(
    database_url, tmp_path: Path, fleet
):
    app = create_app(make_settings(database_url, tmp_path, workers=fleet, SURGE_WEB_ENABLED="false"))
    async with serve(app) as client:
        for path in ("/", "/assets/js/main.js", f"/s/{uuid.uuid4()}"):
            response = await client.get(path)
            assert response.status_code == 404 and error_of(response)["code"] == "not_found", path
        ada = await sign_up(client)
        conversation = (await client.post("/v1/conversations", json={}, headers=ada.headers)).json()
        share = (
            await client.post(f"/v1/conversations/{conversation['id']}/shares", headers=ada.headers)
        ).json()
        assert share["url"] == f"{app.state.components.settings.public_base_url}/v1/shares/{share['id']}"
        assert (await client.get("/docs")).status_code == 200
