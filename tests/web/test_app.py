"""The web app in a real browser (Debian's Chromium through Playwright) against a real Surge and a
simulated worker: what a person does, and what the server holds afterwards.

The worker runs a hundred times faster than life; tests that must catch an answer half-way slow it
down with its ``slowdown`` knob. Prompts are chosen for their (deterministic) answer lengths: the
simulator's first answer to "Summarise the French revolution." is ~650 tokens, to "Why is the sky
blue?" with DeepThink ~1,100 tokens of reasoning then ~370 of answer.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from tests.web.conftest import (
    PASSWORD,
    PHONE,
    Stack,
    api_of,
    screenshot,
    session_of,
    sign_up_in_page,
    surge_stack,
    words,
)

# One worker process for every browser test: one Chromium and one Surge, shared by the module.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

LONG_ANSWER = "Summarise the French revolution."
THOUGHTFUL = "Why is the sky blue?"
# The answer from 40 ms (virtual) per token to ~10 ms real at x100: a ~650-token answer takes ~6 s.
SLOW = 30.0

ANSWER = "article.assistant"


@pytest.fixture(autouse=True)
def _fast_worker(stack: Stack):
    stack.reset()
    yield
    stack.reset()


def send(page: Any, text: str, *, accepted: bool = True) -> None:
    """Type ``text`` and press Enter; unless told otherwise, wait until the turn is on the page."""
    before = page.locator("article.assistant").count()
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")
    if accepted:
        page.wait_for_function("(n) => document.querySelectorAll('article.assistant').length > n", arg=before)


def last_answer(page: Any) -> Any:
    return page.locator(ANSWER).last


def wait_finished(page: Any, status: str = "complete") -> Any:
    answer = last_answer(page)
    answer.and_(page.locator(f'[data-status="{status}"]')).wait_for(timeout=60_000)
    return answer


def wait_text(page: Any, chars: int) -> None:
    page.wait_for_function(
        "(chars) => { const a = [...document.querySelectorAll('article.assistant')].at(-1);"
        " return a && a.dataset.status === 'streaming' && a.querySelector('.answer').textContent.length > chars }",
        arg=chars,
        timeout=60_000,
    )


def conversation_id(page: Any) -> str:
    match = re.search(r"#/c/([0-9a-f-]{36})$", page.url)
    assert match, page.url
    return match.group(1)


def branch(stack: Stack, page: Any) -> list[dict[str, Any]]:
    with api_of(stack, page) as api:
        return api.get(f"/v1/conversations/{conversation_id(page)}").json()["messages"]


def tree(stack: Stack, page: Any) -> list[dict[str, Any]]:
    with api_of(stack, page) as api:
        return api.get(f"/v1/conversations/{conversation_id(page)}/messages?limit=100").json()["data"]


# --- accounts -----------------------------------------------------------------------------------


def test_sign_up_log_out_and_log_in_again(stack, open_page):
    page = open_page(f"{stack.url}/")
    screenshot(page, "sign-in-desktop")
    email = sign_up_in_page(page)
    assert page.locator(".account-name").inner_text() == email
    spent = session_of(page)
    assert spent is not None

    page.get_by_role("button", name="Log out").click()
    page.get_by_role("heading", name="Log in to Surge").wait_for()
    assert session_of(page) is None
    refused = httpx.post(f"{stack.url}/v1/auth/refresh", json={"refresh_token": spent["refresh_token"]})
    assert refused.status_code == 401, "logging out revoked the login on the server"

    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("alert").get_by_text("Wrong email or password.").wait_for()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Message", exact=True).wait_for()
    assert session_of(page)["user"]["email"] == email

    phone = open_page(f"{stack.url}/", viewport=PHONE)
    phone.get_by_role("button", name="Create an account").click()
    screenshot(phone, "sign-up-phone")


def test_the_access_token_is_refreshed_before_it_expires(browser, open_page, tmp_path, sqlite_template):
    with surge_stack(tmp_path, sqlite_template, SURGE_ACCESS_TOKEN_TTL_S="3") as short_lived:
        page = open_page(f"{short_lived.url}/")
        with page.expect_response("**/v1/auth/refresh", timeout=15_000) as refreshed:
            sign_up_in_page(page)
            first = session_of(page)
        assert refreshed.value.status == 200
        page.wait_for_function(
            "(token) => JSON.parse(localStorage.getItem('surge.session')).access_token !== token",
            arg=first["access_token"],
        )
        # Past the first token's expiry: the app still works, on its refreshed token.
        time.sleep(max(0.0, first["expires_at"] / 1000 - time.time() + 0.5))
        send(page, "Still signed in?")
        wait_finished(page)
        assert session_of(page)["refresh_token"] != first["refresh_token"]
        assert page.get_by_role("heading", name="Log in to Surge").count() == 0


# --- answers ------------------------------------------------------------------------------------


def test_deepthink_streams_the_reasoning_then_the_answer(stack, open_page):
    page = open_page(f"{stack.url}/")
    sign_up_in_page(page)
    stack.faults(slowdown=5.0)
    toggle = page.get_by_role("button", name="DeepThink")
    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "true"
    send(page, THOUGHTFUL)
    # Reasoning arrives first, in its block, while the answer is still empty.
    page.wait_for_function(
        "() => { const a = document.querySelector('article.assistant');"
        " return a && a.querySelector('.reasoning-text').textContent.length > 20"
        " && a.querySelector('.answer').textContent.length === 0 }"
    )
    assert last_answer(page).locator("summary").inner_text() == "Thinking…"
    answer = wait_finished(page)
    assert re.fullmatch(r"Thought for \d+ s", answer.locator("summary").inner_text())
    stored = branch(stack, page)[-1]
    assert stored["status"] == "complete" and stored["reasoning"]
    assert words(answer.locator(".answer").inner_text()) == words(stored["content"])
    assert answer.locator(".reasoning-text").text_content() == stored["reasoning"]
    page.locator(".chat-scroller").evaluate("(element) => { element.scrollTop = 0 }")
    screenshot(page, "chat-desktop")

    # The reasoning block folds away.
    answer.locator("summary").click()
    assert answer.locator(".reasoning-text").is_hidden()

    good = answer.get_by_role("button", name="Good answer")
    good.click()
    page.wait_for_function("() => document.querySelector('article.assistant [aria-pressed=true]')")
    assert branch(stack, page)[-1]["feedback"] == "up"
    answer.get_by_role("button", name="Good answer").click()
    page.wait_for_function("() => !document.querySelector('article.assistant .rating[aria-pressed=true]')")
    assert branch(stack, page)[-1]["feedback"] is None


def test_a_reload_mid_answer_resumes_the_stream_and_shows_the_answer_once(stack, open_page):
    page = open_page(f"{stack.url}/")
    sign_up_in_page(page)
    stack.faults(slowdown=SLOW)
    send(page, LONG_ANSWER)
    wait_text(page, 100)
    # Reload once the database holds part of the answer (checkpointed about once a second), so that the
    # reloaded page starts from a partial text and a replay must not add to it.
    deadline = time.monotonic() + 20
    while not (partial := branch(stack, page)[-1])["content"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert partial["content"] and partial["status"] in ("queued", "streaming")
    page.reload()
    wait_text(page, len(partial["content"]) + 50)  # following the answer while it is still written
    during = words(last_answer(page).locator(".answer").inner_text())
    stack.reset()
    answer = wait_finished(page)
    stored = branch(stack, page)[-1]
    assert stored["status"] == "complete" and len(stored["content"]) > 1000
    assert page.locator(ANSWER).count() == 1
    assert words(stored["content"]).startswith(during), "nothing shown twice, nothing skipped, mid-answer"
    assert words(answer.locator(".answer").inner_text()) == words(stored["content"])


def test_a_dropped_connection_resumes_after_the_last_event_it_saw(stack, open_page):
    page = open_page(f"{stack.url}/")
    sign_up_in_page(page)
    requests: list[str] = []

    def cut_the_first_stream(route: Any) -> None:
        requests.append(route.request.url)
        if len(requests) > 1:
            route.continue_()
            return
        # The first stream breaks off in the middle of an event, as a dropped connection would.
        body = route.fetch().text()
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body[: len(body) // 2])

    page.route("**/v1/messages/*/events*", cut_the_first_stream)
    send(page, LONG_ANSWER)
    answer = wait_finished(page)
    stored = branch(stack, page)[-1]
    assert words(answer.locator(".answer").inner_text()) == words(stored["content"])
    assert len(requests) == 2
    assert requests[0].endswith("?after=0")
    resumed_after = int(requests[1].rsplit("after=", 1)[1])
    assert resumed_after > 2, "the second request resumed where the first broke off"


def test_stop_keeps_the_partial_answer(stack, open_page):
    page = open_page(f"{stack.url}/")
    sign_up_in_page(page)
    stack.faults(slowdown=SLOW)
    send(page, LONG_ANSWER)
    wait_text(page, 100)
    assert page.get_by_role("button", name="Send").is_hidden()
    page.keyboard.press("Escape")
    answer = wait_finished(page, "cancelled")
    assert answer.locator(".answer-notice").inner_text() == "Stopped."
    stored = branch(stack, page)[-1]
    assert stored["status"] == "cancelled" and stored["finish_reason"] == "cancelled"
    assert 100 < len(stored["content"]) < 2700, "partial"
    assert words(answer.locator(".answer").inner_text()) == words(stored["content"])
    page.get_by_role("button", name="Send").wait_for()


def test_regenerate_then_switch_between_the_two_answers(stack, open_page):
    page = open_page(f"{stack.url}/")
    sign_up_in_page(page)
    send(page, "What is a prime number?")
    first = words(wait_finished(page).locator(".answer").inner_text())
    # With DeepThink on, the same question gets another answer (the simulator is deterministic).
    page.get_by_role("button", name="DeepThink").click()
    last_answer(page).get_by_role("button", name="Regenerate").click()
    page.locator(f"{ANSWER} .switcher-position").get_by_text("2 / 2").wait_for()
    second = wait_finished(page)
    second_text = words(second.locator(".answer").inner_text())
    assert second_text != first and second.locator(".reasoning-text").text_content()
    answers = [message for message in tree(stack, page) if message["role"] == "assistant"]
    assert len(answers) == 2 and answers[0]["parent_id"] == answers[1]["parent_id"]

    last_answer(page).get_by_role("button", name="Previous version").click()
    page.locator(f"{ANSWER} .switcher-position").get_by_text("1 / 2").wait_for()
    assert words(last_answer(page).locator(".answer").inner_text()) == first
    assert branch(stack, page)[-1]["id"] == answers[0]["id"], "the server's current branch follows"
    page.reload()
    page.locator(f"{ANSWER} .switcher-position").get_by_text("1 / 2").wait_for()
    last_answer(page).get_by_role("button", name="Next version").click()
    page.locator(f"{ANSWER} .switcher-position").get_by_text("2 / 2").wait_for()
    assert words(last_answer(page).locator(".answer").inner_text()) == second_text


def test_editing_a_message_starts_a_new_branch(stack, open_page):
    page = open_page(f"{stack.url}/")
    sign_up_in_page(page)
    box = page.get_by_label("Message", exact=True)
    box.fill("First line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    assert box.input_value() == "First line\nsecond line", "Shift+Enter is a new line, not a send"
    box.press("Enter")
    wait_finished(page)
    question = page.locator("article.user").last
    assert question.locator(".bubble").inner_text() == "First line\nsecond line"

    question.get_by_role("button", name="Edit").click()
    editor = page.get_by_label("Edit message")
    editor.fill("A better question")
    editor.press("Enter")
    page.locator("article.user .switcher-position").get_by_text("2 / 2").wait_for()
    wait_finished(page)
    assert page.locator("article.user .bubble").inner_text() == "A better question"
    roots = [message for message in tree(stack, page) if message["parent_id"] is None]
    assert [root["content"] for root in roots] == ["First line\nsecond line", "A better question"]

    page.locator("article.user").get_by_role("button", name="Previous version").click()
    page.locator("article.user .switcher-position").get_by_text("1 / 2").wait_for()
    assert page.locator("article.user .bubble").inner_text() == "First line\nsecond line"
    assert page.locator(ANSWER).count() == 1


# --- sharing and hostile answers ----------------------------------------------------------------


def test_a_share_link_opens_signed_out_without_the_reasoning(stack, open_page):
    page = open_page(f"{stack.url}/")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_up_in_page(page)
    page.get_by_role("button", name="DeepThink").click()
    send(page, THOUGHTFUL)
    answer_text = words(wait_finished(page).locator(".answer").inner_text())

    page.get_by_role("button", name="Share").click()
    dialog = page.get_by_role("dialog", name="Share this conversation")
    url = dialog.get_by_label("Link").input_value()
    assert re.fullmatch(rf"{re.escape(stack.url)}/s/[0-9a-f-]{{36}}", url)
    dialog.get_by_role("button", name="Copy link").click()
    dialog.get_by_text("Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == url
    dialog.get_by_role("button", name="Done").click()

    stranger = open_page(url)
    stranger.get_by_text("Shared conversation").wait_for()
    stranger.locator("article.assistant .answer").wait_for()
    assert stranger.locator("article.user .bubble").inner_text() == THOUGHTFUL
    assert words(stranger.locator("article.assistant .answer").inner_text()) == answer_text
    assert stranger.locator(".reasoning-text").count() == 0
    assert session_of(stranger) is None and stranger.get_by_label("Password").count() == 0
    screenshot(stranger, "share-desktop")
    phone = open_page(url, viewport=PHONE)
    phone.locator("article.assistant .answer").wait_for()
    screenshot(phone, "share-phone")

    gone = open_page(url.rsplit("/", 1)[0] + "/00000000-0000-7000-8000-000000000000")
    gone.get_by_role("heading", name="This conversation isn't available").wait_for()


HOSTILE = """# Results

<img src=x onerror="window.__pwned = 1"> and <script>window.__pwned = 2</script>

**Bold** and *italic* and `<b>code</b>`, a [safe link](https://example.com/a?b=1) and
[a trap](javascript:window.__pwned=3) and ![tracker](https://tracker.example/pixel.png).

- first item
- second <iframe src="https://evil.example"></iframe>

```html
<script>window.__pwned = 4</script>
```
"""


def test_markdown_from_the_model_renders_as_text_never_as_html(stack, open_page):
    page = open_page(f"{stack.url}/")
    sign_up_in_page(page)
    stack.faults(answer_text=HOSTILE)
    send(page, "Say something dangerous")
    answer = wait_finished(page).locator(".answer")
    assert branch(stack, page)[-1]["content"] == HOSTILE
    assert answer.locator("img, script, iframe").count() == 0
    assert page.evaluate("window.__pwned") is None
    text = answer.inner_text()
    assert (
        '<img src=x onerror="window.__pwned = 1">' in text and "<script>window.__pwned = 2</script>" in text
    )
    assert answer.locator("h3").inner_text() == "Results"
    assert answer.locator("strong").inner_text() == "Bold" and answer.locator("em").inner_text() == "italic"
    assert answer.locator("p code").inner_text() == "<b>code</b>"
    links = answer.locator("a")
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [
        "https://example.com/a?b=1",
        "https://tracker.example/pixel.png",
        "https://evil.example/",  # a bare URL is a link, and stays a harmless one
    ]
    assert "noopener" in links.first.get_attribute("rel")
    assert "a trap" in text and "javascript:" not in (answer.inner_html())
    assert answer.locator("li").count() == 2 and "<iframe" in answer.locator("li").nth(1).inner_text()
    assert answer.locator("pre code").inner_text() == "<script>window.__pwned = 4</script>"

    # The same text, shared, is as harmless on the public page.
    page.get_by_role("button", name="Share").click()
    url = page.get_by_role("dialog").get_by_label("Link").input_value()
    stranger = open_page(url)
    stranger.locator("article.assistant .answer h3").wait_for()
    assert stranger.locator("article.assistant img, article.assistant script").count() == 0
    assert stranger.evaluate("window.__pwned") is None


def test_the_markdown_renderer_covers_what_answers_use(stack, open_page):
    page = open_page(f"{stack.url}/")
    cases = page.evaluate(
        """async () => {
        const { renderMarkdown } = await import('/assets/js/markdown.js');
        const html = (text) => { const div = document.createElement('div'); div.append(renderMarkdown(text)); return div; };
        const out = {};
        out.ordered = [...html('3. three\\n4. four').querySelectorAll('ol[start="3"] > li')].map((li) => li.textContent);
        out.nested = html('- a\\n  - b\\n- c').querySelectorAll('ul ul li').length;
        out.quote = html('> quoted *text*').querySelector('blockquote em')?.textContent;
        out.unclosed = html('```python\\nprint(1)').querySelector('pre code')?.textContent;
        out.language = html('```python\\nx\\n```').querySelector('code').dataset.language;
        out.intraword = html('snake_case_name').textContent;
        out.bare = html('see https://example.com/x.').querySelector('a')?.getAttribute('href');
        out.dataLink = html('[x](data:text/html,hi)').querySelectorAll('a').length;
        out.escaped = html('\\\\*not em\\\\*').textContent;
        out.rule = html('---').querySelectorAll('hr').length;
        out.heading = html('###### tiny').querySelector('h6')?.textContent;
        out.starStar = html('**half').textContent;
        out.urlLabel = html('[https://a.example](https://b.example)').querySelectorAll('a').length;
        return out;
    }"""
    )
    assert cases == {
        "ordered": ["three", "four"],
        "nested": 1,
        "quote": "text",
        "unclosed": "print(1)",
        "language": "python",
        "intraword": "snake_case_name",
        "bare": "https://example.com/x",
        "dataLink": 0,
        "escaped": "*not em*",
        "rule": 1,
        "heading": "tiny",
        "starStar": "**half",
        "urlLabel": 1,
    }


# --- telling the user what is going on ----------------------------------------------------------


def test_429_and_503_show_a_countdown_and_the_retry_sends_the_turn_once(stack, open_page):
    page = open_page(f"{stack.url}/")
    sign_up_in_page(page)
    keys: list[str] = []
    refusals = [
        (503, "overloaded", "Surge is very busy right now."),
        (429, "rate_limited", "You're sending requests too quickly."),
    ]

    def refuse_then_pass(route: Any) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        keys.append(route.request.headers["idempotency-key"])
        if len(keys) > len(refusals):
            route.continue_()
            return
        status, code, _ = refusals[len(keys) - 1]
        route.fulfill(
            status=status,
            headers={"Retry-After": "3", "Content-Type": "application/json"},
            body=f'{{"error": {{"code": "{code}", "message": "raw", "retry_after_s": 3, "request_id": "r"}}}}',
        )

    page.route("**/v1/conversations/*/messages", refuse_then_pass)
    send(page, "Are you there?", accepted=False)
    for _status, _code, words_shown in refusals:
        notice = page.get_by_role("alert").locator(".notice-box")
        notice.get_by_text(words_shown).wait_for()
        notice.get_by_text(re.compile(r"You can try again in [1-3] s\.")).wait_for()
        assert "raw" not in notice.inner_text()
        notice.get_by_role("button", name="Try again").click()  # shown once the countdown is over
    wait_finished(page)
    assert len(set(keys)) == 1 and len(keys) == 3, "one Idempotency-Key for every attempt of one send"
    assert [message["content"] for message in tree(stack, page)].count("Are you there?") == 1
    assert page.get_by_label("Message", exact=True).input_value() == ""


def test_a_send_whose_answer_was_lost_is_retried_without_a_second_turn(stack, open_page):
    page = open_page(f"{stack.url}/")
    sign_up_in_page(page)
    keys: list[str] = []

    def lose_the_first_answer(route: Any) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        keys.append(route.request.headers["idempotency-key"])
        if len(keys) == 1:
            route.fetch()  # the server accepts the turn; its answer never reaches the page
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/v1/conversations/*/messages", lose_the_first_answer)
    send(page, "Only once, please")
    wait_finished(page)
    assert len(keys) == 2 and keys[0] == keys[1]
    messages = tree(stack, page)
    assert [message["role"] for message in messages] == ["user", "assistant"]


def test_a_queued_turn_shows_its_place_in_line_and_a_degraded_one_says_why(
    browser, open_page, tmp_path, sqlite_template
):
    with surge_stack(
        tmp_path,
        sqlite_template,
        worker={"max_running_requests": 1},
        SURGE_HEALTH_INTERVAL_S="0.1",
        SURGE_ADMISSION_RAISE_AFTER_S="600",
    ) as busy:
        page = open_page(f"{busy.url}/")
        sign_up_in_page(page)
        admin_email = f"admin-{time.monotonic_ns()}@example.com"
        with httpx.Client(base_url=busy.url, timeout=30) as api:
            admin = api.post("/v1/auth/signup", json={"email": admin_email, "password": PASSWORD}).json()
            busy.set_tier(admin_email, "admin")
            headers = {"Authorization": f"Bearer {admin['access_token']}"}
            for _ in range(100):
                workers = api.get("/v1/admin/fleet", headers=headers).json()["workers"]
                if all(worker["max_running"] == 1 for worker in workers):
                    break
                time.sleep(0.05)
            busy.faults(slowdown=SLOW)
            holder = api.post("/v1/conversations", json={}, headers=headers).json()
            turn = api.post(
                f"/v1/conversations/{holder['id']}/messages", json={"content": LONG_ANSWER}, headers=headers
            ).json()
            send(page, "Am I in line?")
            notice = last_answer(page).locator(".answer-notice")
            notice.get_by_text(re.compile(r"Waiting in line: you are 1st")).wait_for()
            screenshot(page, "queued-desktop")
            api.post(f"/v1/messages/{turn['assistant_message']['id']}/cancel", headers=headers)
            busy.reset()
            wait_finished(page)

            # The operator forces degrade level 2: free users' answers lose DeepThink and get shorter.
            assert api.put("/v1/admin/overload", json={"level": 2}, headers=headers).status_code == 200
            page.get_by_role("button", name="DeepThink").click()
            send(page, "And now?")
            answer = wait_finished(page)
            assert answer.locator(".answer-notice").inner_text() == (
                "Surge is under heavy load, so this answer is without DeepThink and shorter than usual."
            )
            assert answer.locator(".reasoning-text").text_content() == ""
            api.put("/v1/admin/overload", json={"level": None}, headers=headers)


# --- lists and phones ---------------------------------------------------------------------------


def test_the_conversation_list_scrolls_searches_pins_renames_archives_and_deletes(stack, open_page):
    page = open_page(f"{stack.url}/")
    sign_up_in_page(page)
    with api_of(stack, page) as api:
        ids = [api.post("/v1/conversations", json={"title": f"Topic {n:02}"}).json()["id"] for n in range(45)]
    page.reload()
    rows = page.locator(".conversation-list li[data-id]")
    rows.nth(19).wait_for()
    # Pages of 20 come as the list scrolls (the first one or two fill the window).
    assert rows.count() in (20, 40)
    for _ in range(3):
        page.locator(".list-scroller").evaluate("(element) => { element.scrollTop = element.scrollHeight }")
        page.wait_for_timeout(200)
    page.wait_for_function("() => document.querySelectorAll('.conversation-list li[data-id]').length === 45")
    titles = rows.locator(".conversation-title").all_inner_texts()
    assert titles == [f"Topic {n:02}" for n in reversed(range(45))]

    def act(title: str, action: str) -> None:
        page.get_by_role("button", name=f"Actions for {title}").click()
        page.get_by_role("menuitem", name=action).click()

    act("Topic 30", "Pin")
    page.wait_for_function(
        "() => document.querySelector('.conversation-list li.pinned .conversation-title')?.textContent === 'Topic 30'"
    )
    act("Topic 35", "Rename")
    rename = page.get_by_label("New title")
    rename.fill("Renamed five")
    rename.press("Enter")
    page.locator(".conversation-title").get_by_text("Renamed five").wait_for()

    page.get_by_label("Search conversations").fill("renamed")
    page.wait_for_function("() => document.querySelectorAll('.conversation-list li[data-id]').length === 1")
    rows.first.locator(".conversation-link").click()
    page.get_by_role("heading", name="Renamed five").wait_for()
    assert conversation_id(page) == ids[35]
    page.get_by_label("Search conversations").fill("")
    page.wait_for_function("() => document.querySelectorAll('.conversation-list li[data-id]').length >= 20")
    screenshot(page, "conversations-desktop")

    act("Topic 37", "Archive")
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.conversation-title')].some((t) => t.textContent === 'Topic 37')"
    )
    page.get_by_role("button", name="Archived").click()
    page.wait_for_function("() => document.querySelectorAll('.conversation-list li[data-id]').length === 1")
    act("Topic 37", "Delete")
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_text("Nothing archived.").wait_for()
    with api_of(stack, page) as api:
        assert api.get(f"/v1/conversations/{ids[37]}").status_code == 404
        assert api.get(f"/v1/conversations/{ids[35]}").json()["conversation"]["title"] == "Renamed five"
        listed = api.get("/v1/conversations?limit=2").json()["data"]
        assert listed[0]["title"] == "Topic 30" and listed[0]["pinned"] is True


def test_on_a_phone_the_list_is_a_drawer_and_nothing_overflows(stack, open_page):
    page = open_page(f"{stack.url}/", viewport=PHONE)
    sign_up_in_page(page)
    page.get_by_role("button", name="DeepThink").click()
    send(page, THOUGHTFUL)
    wait_finished(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    sidebar = page.get_by_role("navigation", name="Conversations")
    assert not sidebar.locator(".new-chat").is_visible() or sidebar.bounding_box()["x"] < 0
    page.locator(".chat-scroller").evaluate("(element) => { element.scrollTop = 0 }")
    screenshot(page, "chat-phone")
    page.get_by_role("button", name="Conversations").click()
    page.wait_for_function("() => document.querySelector('.sidebar').getBoundingClientRect().x >= 0")
    screenshot(page, "conversations-phone")
    page.get_by_role("button", name="New chat", exact=True).click()
    page.get_by_role("heading", name="How can I help?").wait_for()
    page.wait_for_function("() => document.querySelector('.sidebar').getBoundingClientRect().right <= 0")
