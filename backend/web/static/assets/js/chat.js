// The chat view: the current branch of a conversation, the answer streaming in (reasoning first, in a
// "Thought for N s" block), Stop, regenerate, edit (a new branch), the "< 2/3 >" branch switcher, ratings,
// sharing, and the composer with the DeepThink switch.

import { ApiError, ERROR_WORDS } from "./api.js";
import { h, icon, iconButton, ordinal, randomId } from "./dom.js";
import { modal } from "./dialog.js";
import { copyText, renderMarkdown } from "./markdown.js";
import { clearNotice, showNotice } from "./notice.js";
import { AnswerStream } from "./stream.js";

const ACTIVE = new Set(["queued", "streaming"]);
const THINKING_KEY = "surge.deepthink";

export class ChatView {
  constructor(api, { onCreated, onActivity, onOpenMenu }) {
    this.api = api;
    this.hooks = { onCreated, onActivity, onOpenMenu };
    this.conversation = null;
    this.branch = [];
    this.tree = new Map();
    this.streams = new Map();
    this.views = new Map();
    this.pending = null;
    this.sending = false;
    this.loadToken = 0;
    this.thinking = localStorage.getItem(THINKING_KEY) === "true";
    this.models = api.request("GET", "/v1/models").then((page) => page.data).catch(() => []);

    this.title = h("h1", { class: "chat-title", text: "New chat" });
    this.shareButton = iconButton("share", "Share", () => this.share(), { text: true, cls: "share-button" });
    this.shareButton.hidden = true;
    this.notices = h("div", { class: "notices", role: "alert" });
    this.messages = h("div", { class: "messages", role: "log", "aria-label": "Messages", "aria-live": "off" });
    this.status = h("p", { class: "visually-hidden", role: "status", "aria-live": "polite" });
    this.scroller = h("div", { class: "chat-scroller" }, this.messages);

    this.input = h("textarea", {
      id: "composer-input",
      rows: "1",
      placeholder: "Message Surge",
      autocomplete: "off",
      onKeydown: (event) => {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          this.submit();
        }
      },
      onInput: () => this.autosize(),
    });
    this.thinkToggle = h("button", {
      type: "button",
      class: "chip think-toggle",
      "aria-pressed": String(this.thinking),
      title: "Reason before answering (slower, better on hard questions)",
      onClick: () => this.setThinking(!this.thinking),
    }, "DeepThink");
    this.sendButton = h("button", { type: "submit", class: "send-button", title: "Send", "aria-label": "Send" }, icon("send"));
    this.stopButton = h("button", { type: "button", class: "stop-button", title: "Stop (Esc)", "aria-label": "Stop", hidden: true, onClick: () => this.stop() }, icon("stop"));
    this.composer = h(
      "form",
      { class: "composer", onSubmit: (event) => { event.preventDefault(); this.submit(); } },
      h("label", { for: "composer-input", class: "visually-hidden", text: "Message" }),
      this.input,
      h("div", { class: "composer-row" }, this.thinkToggle, h("span", { class: "hint", text: "Enter to send, Shift+Enter for a new line" }), this.stopButton, this.sendButton),
    );
    this.element = h(
      "main",
      { class: "chat", id: "main" },
      h("header", { class: "topbar" }, iconButton("menu", "Conversations", () => this.hooks.onOpenMenu(), { cls: "menu-button" }), this.title, this.shareButton),
      this.notices,
      this.scroller,
      this.status,
      this.composer,
    );
    this.onKey = (event) => {
      if (event.key === "Escape" && !document.querySelector("dialog[open]") && this.activeAnswer()) {
        event.preventDefault();
        this.stop();
      }
    };
    document.addEventListener("keydown", this.onKey);
    this.applyModel();
  }

  destroy() {
    document.removeEventListener("keydown", this.onKey);
    this.closeStreams();
  }

  // --- loading --------------------------------------------------------------------------------------

  /** Show conversation `id` (null: a new, empty chat). */
  async open(id) {
    if (this.conversation && this.conversation.id === id) return;
    const token = ++this.loadToken;
    this.closeStreams();
    clearNotice(this.notices);
    this.pending = null;
    if (!id) {
      this.conversation = null;
      this.branch = [];
      this.tree = new Map();
      this.render();
      this.input.focus();
      return;
    }
    this.messages.replaceChildren(h("p", { class: "loading", text: "Loading…" }));
    try {
      const [detail, tree] = await Promise.all([
        this.api.request("GET", `/v1/conversations/${id}`),
        this.fetchTree(id),
      ]);
      if (token !== this.loadToken) return;
      this.conversation = detail.conversation;
      this.tree = tree;
      this.branch = detail.messages.map((message) => this.remember(message));
      this.render();
      this.followActive();
    } catch (error) {
      if (token !== this.loadToken) return;
      this.conversation = null;
      this.messages.replaceChildren();
      showNotice(this.notices, error, { retry: () => { this.loadToken += 1; this.open(id); } });
    }
  }

  async fetchTree(id) {
    const tree = new Map();
    let cursor = null;
    do {
      const params = new URLSearchParams({ limit: "100" });
      if (cursor) params.set("cursor", cursor);
      const page = await this.api.request("GET", `/v1/conversations/${id}/messages?${params}`);
      for (const message of page.data) tree.set(message.id, message);
      cursor = page.next_cursor;
    } while (cursor);
    return tree;
  }

  /** The tree's copy of `message` (one object per id), updated with its newer fields. */
  remember(message) {
    const known = this.tree.get(message.id);
    if (known) {
      Object.assign(known, message);
      return known;
    }
    this.tree.set(message.id, message);
    return message;
  }

  async reloadBranch() {
    const id = this.conversation.id;
    const detail = await this.api.request("GET", `/v1/conversations/${id}`);
    if (!this.conversation || this.conversation.id !== id) return;
    this.conversation = detail.conversation;
    this.branch = detail.messages.map((message) => this.remember(message));
    this.render();
    this.followActive();
  }

  /** The messages from the root down to `id`, through the tree. */
  pathTo(id) {
    const path = [];
    for (let message = this.tree.get(id); message; message = this.tree.get(message.parent_id)) path.unshift(message);
    return path;
  }

  siblings(message) {
    return [...this.tree.values()]
      .filter((other) => other.parent_id === message.parent_id && other.role === message.role)
      .sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1));
  }

  activeAnswer() {
    const last = this.branch.at(-1);
    return last && last.role === "assistant" && ACTIVE.has(last.status) ? last : null;
  }

  // --- streaming ------------------------------------------------------------------------------------

  followActive() {
    const active = this.activeAnswer();
    if (active && !this.streams.has(active.id)) this.follow(active, { live: false });
  }

  /** Read `message`'s events from the first (its text is rebuilt from them, so nothing shows twice). */
  follow(message, { live }) {
    message.content = "";
    message.reasoning = null;
    message.live = { measured: live, thinkStart: null, thinkEnd: null, queue: null, degraded: null, connection: "live" };
    const stream = new AnswerStream(this.api, message.id, {
      onEvent: (name, data) => this.apply(message, name, data),
      onConnection: (state) => {
        message.live.connection = state;
        this.update(message);
      },
      onEnd: (error) => {
        this.streams.delete(message.id);
        if (error) showNotice(this.notices, error);
        this.update(message, true);
        this.refreshActions();
        this.refreshComposer();
        this.hooks.onActivity?.(this.conversation);
      },
    });
    this.streams.set(message.id, stream);
    this.refreshComposer();
  }

  apply(message, name, data) {
    const live = message.live;
    switch (name) {
      case "queued":
        message.status = "queued";
        live.queue = data;
        this.say(`Waiting in line, ${ordinal(data.position)}.`);
        break;
      case "started":
        message.status = "streaming";
        live.queue = null;
        break;
      case "reasoning":
        message.status = "streaming";
        message.reasoning = (message.reasoning || "") + data.delta;
        if (live.thinkStart === null) live.thinkStart = performance.now();
        break;
      case "content":
        message.status = "streaming";
        if (message.reasoning && live.thinkEnd === null) this.endThinking(message);
        message.content += data.delta;
        break;
      case "degraded":
        live.degraded = data;
        break;
      case "done":
        if (message.reasoning && live.thinkEnd === null) this.endThinking(message);
        Object.assign(message, data.message);
        this.say(message.status === "cancelled" ? "Answer stopped." : "Answer complete.");
        break;
      case "error":
        message.status = "failed";
        message.error = { code: data.code, message: data.message };
        live.retryAfter = data.retry_after_s ? Date.now() + data.retry_after_s * 1000 : null;
        this.say("The answer failed.");
        break;
      default:
        return;
    }
    this.update(message, name === "done" || name === "error" || name === "queued" || name === "started");
  }

  endThinking(message) {
    const live = message.live;
    live.thinkEnd = performance.now();
    if (live.measured && live.thinkStart !== null) {
      const seconds = Math.max(1, Math.round((live.thinkEnd - live.thinkStart) / 1000));
      sessionStorage.setItem(`surge.thought.${message.id}`, String(seconds));
    }
  }

  closeStreams() {
    for (const stream of this.streams.values()) stream.close();
    this.streams.clear();
  }

  say(text) {
    this.status.textContent = text;
  }

  // --- rendering ------------------------------------------------------------------------------------

  render() {
    const conversation = this.conversation;
    this.title.textContent = conversation ? conversation.title || "New chat" : "New chat";
    document.title = conversation?.title ? `${conversation.title} · Surge` : "Surge";
    this.shareButton.hidden = !conversation || this.branch.length === 0;
    this.views.clear();
    // Streams of answers no longer on the branch stop being read (they go on on the server).
    const shown = new Set(this.branch.map((message) => message.id));
    for (const [id, stream] of this.streams) {
      if (!shown.has(id)) {
        stream.close();
        this.streams.delete(id);
      }
    }
    if (this.branch.length === 0) {
      this.messages.replaceChildren(h("div", { class: "empty-chat" }, h("h2", { text: "How can I help?" }), h("p", { text: "Ask anything. Switch DeepThink on for questions that need reasoning." })));
    } else {
      this.messages.replaceChildren(...this.branch.map((message) => this.messageView(message)));
    }
    this.refreshComposer();
    this.applyModel();
    this.scrollToEnd(true);
  }

  messageView(message) {
    const article = h("article", { class: `message ${message.role}`, "data-id": message.id, "data-status": message.status });
    const view = { article };
    if (message.role === "user") {
      article.setAttribute("aria-label", "You");
      view.body = h("div", { class: "bubble", text: message.content });
      article.append(view.body);
    } else {
      article.setAttribute("aria-label", "Surge");
      view.thoughtLabel = h("span");
      view.reasoning = h("div", { class: "reasoning-text" });
      view.thought = h("details", { class: "thought", open: true }, h("summary", {}, view.thoughtLabel), view.reasoning);
      view.notice = h("p", { class: "answer-notice" });
      view.body = h("div", { class: "answer markdown" });
      article.append(view.thought, view.notice, view.body);
    }
    view.actions = h("div", { class: "actions" });
    article.append(view.actions);
    this.views.set(message.id, view);
    this.fill(message, view, true);
    return article;
  }

  /** Bring `message`'s view up to date; at most once a frame while text streams in. */
  update(message, structural = false) {
    message.dirtyStructure = message.dirtyStructure || structural;
    if (message.frame) return;
    message.frame = requestAnimationFrame(() => {
      message.frame = null;
      const view = this.views.get(message.id);
      if (!view) return;
      const nearEnd = this.isNearEnd();
      this.fill(message, view, message.dirtyStructure);
      message.dirtyStructure = false;
      if (nearEnd) this.scrollToEnd();
      this.refreshComposer();
    });
  }

  fill(message, view, structural) {
    view.article.dataset.status = message.status;
    if (message.role === "assistant") {
      const reasoning = message.reasoning || "";
      view.thought.hidden = !reasoning;
      if (view.reasoning.textContent.length !== reasoning.length) {
        const box = view.reasoning;
        const following = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
        box.textContent = reasoning;
        if (following) box.scrollTop = box.scrollHeight;
      }
      view.thoughtLabel.textContent = this.thoughtLabel(message);
      view.body.replaceChildren(renderMarkdown(message.content || ""));
      const notice = this.noticeText(message);
      view.notice.textContent = notice;
      view.notice.hidden = !notice;
      if (message.status === "failed" && message.live?.retryAfter) this.countdown(message, view);
    }
    if (structural) view.actions.replaceChildren(...this.actions(message));
  }

  thoughtLabel(message) {
    const thinking = message.status === "streaming" && !message.content;
    if (thinking) return "Thinking…";
    const seconds = sessionStorage.getItem(`surge.thought.${message.id}`);
    if (seconds) return `Thought for ${seconds} s`;
    const tokens = message.usage?.reasoning_tokens;
    return tokens ? `Thoughts (${tokens.toLocaleString("en")} tokens)` : "Thoughts";
  }

  noticeText(message) {
    const live = message.live || {};
    const parts = [];
    if (message.status === "queued") {
      const queue = live.queue;
      parts.push(
        queue
          ? `Waiting in line: you are ${ordinal(queue.position)}` +
              (queue.estimated_wait_s >= 1 ? `, about ${Math.round(queue.estimated_wait_s)} s to go.` : ".")
          : "Waiting for a model server…",
      );
    }
    if (live.degraded) {
      const changes = live.degraded.changes || {};
      const what = [];
      if (changes.thinking === false) what.push("without DeepThink");
      if (changes.max_tokens) what.push("shorter than usual");
      parts.push(`Surge is under heavy load, so this answer is ${what.join(" and ") || "simplified"}.`);
    }
    if (ACTIVE.has(message.status) && live.connection === "reconnecting") parts.push("Connection lost, reconnecting…");
    if (message.status === "cancelled") parts.push("Stopped.");
    if (message.status === "failed") {
      const code = message.error?.code;
      parts.push(`This answer failed: ${(ERROR_WORDS[code] || "something went wrong.").replace(/^./, (c) => c.toLowerCase())}`);
    }
    if (message.finish_reason === "length" && message.status === "complete") parts.push("The answer reached its length limit.");
    return parts.join(" ");
  }

  countdown(message, view) {
    clearInterval(view.timer);
    const tick = () => {
      const left = Math.ceil((message.live.retryAfter - Date.now()) / 1000);
      const base = this.noticeText(message);
      view.notice.textContent = left > 0 ? `${base} You can try again in ${left} s.` : `${base} You can try again now.`;
      if (left <= 0) clearInterval(view.timer);
    };
    tick();
    view.timer = setInterval(tick, 250);
  }

  actions(message) {
    const items = [];
    const siblings = this.siblings(message);
    if (siblings.length > 1) {
      const index = siblings.findIndex((other) => other.id === message.id);
      const previous = iconButton("left", "Previous version", () => this.switchTo(siblings[index - 1]), { cls: "small" });
      const next = iconButton("right", "Next version", () => this.switchTo(siblings[index + 1]), { cls: "small" });
      previous.disabled = index <= 0;
      next.disabled = index >= siblings.length - 1;
      items.push(h("span", { class: "switcher", role: "group", "aria-label": "Versions" }, previous, h("span", { class: "switcher-position", text: `${index + 1} / ${siblings.length}` }), next));
    }
    const busy = Boolean(this.activeAnswer());
    if (message.role === "user") {
      const edit = iconButton("edit", "Edit", () => this.edit(message), { cls: "small" });
      edit.disabled = busy;
      items.push(edit, iconButton("copy", "Copy", (event) => copyText(message.content, event.currentTarget), { cls: "small" }));
      return items;
    }
    if (ACTIVE.has(message.status)) return items;
    items.push(iconButton("copy", "Copy", (event) => copyText(message.content, event.currentTarget), { cls: "small" }));
    for (const [rating, label] of [["up", "Good answer"], ["down", "Bad answer"]]) {
      const button = iconButton(rating, label, () => this.rate(message, rating), { cls: "small rating" });
      button.setAttribute("aria-pressed", String(message.feedback === rating));
      items.push(button);
    }
    if (message === this.branch.at(-1)) {
      const again = iconButton("regenerate", "Regenerate", () => this.regenerate(message), { cls: "small" });
      again.disabled = busy || this.sending;
      items.push(again);
    }
    return items;
  }

  refreshActions() {
    for (const message of this.branch) {
      const view = this.views.get(message.id);
      if (view) view.actions.replaceChildren(...this.actions(message));
    }
  }

  refreshComposer() {
    const active = this.activeAnswer();
    this.stopButton.hidden = !active;
    this.sendButton.hidden = Boolean(active);
    this.sendButton.disabled = this.sending;
    this.composer.classList.toggle("busy", Boolean(active) || this.sending);
  }

  isNearEnd() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
  }

  scrollToEnd(force = false) {
    if (force || this.isNearEnd()) this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  autosize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 240)}px`;
  }

  async applyModel() {
    const models = await this.models;
    const id = this.conversation?.model;
    const model = models.find((candidate) => candidate.id === id) || models[0];
    const mode = model?.thinking || "optional";
    this.thinkToggle.disabled = mode !== "optional";
    this.thinkToggle.setAttribute("aria-pressed", String(mode === "always" || (mode === "optional" && this.thinking)));
  }

  setThinking(on) {
    this.thinking = on;
    localStorage.setItem(THINKING_KEY, String(on));
    this.thinkToggle.setAttribute("aria-pressed", String(on));
  }

  // --- actions --------------------------------------------------------------------------------------

  async submit() {
    const content = this.input.value.trim();
    if (!content || this.sending || this.activeAnswer()) return;
    if (await this.send(content, undefined)) {
      this.input.value = "";
      this.autosize();
    }
    this.input.focus();
  }

  /**
   * Send `content` as a child of `parentId` (undefined: the current leaf; null: a new first message).
   * The Idempotency-Key belongs to this exact send: trying it again after a failure reuses it, so the
   * server creates the turn at most once however many times it was clicked.
   */
  async send(content, parentId) {
    if (this.sending) return false;
    this.sending = true;
    this.refreshComposer();
    clearNotice(this.notices);
    try {
      if (!this.conversation) {
        const conversation = await this.api.request("POST", "/v1/conversations", { body: {} });
        this.conversation = conversation;
        this.tree = new Map();
        this.branch = [];
        this.loadToken += 1;
        this.hooks.onCreated?.(conversation);
      }
      const id = this.conversation.id;
      const body = { content, thinking: this.thinking };
      if (parentId !== undefined) body.parent_id = parentId;
      const fingerprint = JSON.stringify([id, "send", body]);
      if (this.pending?.fingerprint !== fingerprint) this.pending = { fingerprint, key: randomId() };
      const turn = await this.api.create(`/v1/conversations/${id}/messages`, body, this.pending.key);
      this.pending = null;
      this.accept(turn);
      return true;
    } catch (error) {
      this.failed(error, () => this.send(content, parentId).then((sent) => { if (sent && parentId === undefined) this.input.value = ""; }));
      return false;
    } finally {
      this.sending = false;
      this.refreshComposer();
    }
  }

  async regenerate(message) {
    if (this.sending || this.activeAnswer()) return;
    this.sending = true;
    this.refreshComposer();
    clearNotice(this.notices);
    try {
      const body = { thinking: this.thinking };
      const fingerprint = JSON.stringify([message.id, "regenerate", body]);
      if (this.pending?.fingerprint !== fingerprint) this.pending = { fingerprint, key: randomId() };
      const turn = await this.api.create(`/v1/messages/${message.id}/regenerate`, body, this.pending.key);
      this.pending = null;
      this.accept(turn);
    } catch (error) {
      this.failed(error, () => this.regenerate(message));
    } finally {
      this.sending = false;
      this.refreshComposer();
    }
  }

  failed(error, retry) {
    if (error instanceof ApiError && error.status === 401) return; // signed out: the sign-in page shows
    if (error instanceof ApiError && error.code === "conflict") {
      showNotice(this.notices, "An answer is still being written. Wait for it, or stop it first.");
      return;
    }
    showNotice(this.notices, error, { retry });
  }

  accept(turn) {
    const user = this.remember(turn.user_message);
    const answer = this.remember(turn.assistant_message);
    this.branch = [...this.pathTo(user.id), answer];
    this.render();
    this.follow(answer, { live: true });
    this.update(answer, true);
    this.hooks.onActivity?.(this.conversation);
  }

  async stop() {
    const active = this.activeAnswer();
    if (!active) return;
    this.say("Stopping…");
    try {
      const stopped = await this.api.request("POST", `/v1/messages/${active.id}/cancel`);
      // The stream ends with `done` (cancelled); if it is not being read, take the answer as it is.
      if (!this.streams.has(active.id)) {
        Object.assign(active, stopped);
        this.update(active, true);
      }
    } catch (error) {
      showNotice(this.notices, error);
    }
  }

  async switchTo(message) {
    if (!message) return;
    try {
      await this.api.request("PATCH", `/v1/conversations/${this.conversation.id}`, { body: { current_leaf_id: message.id } });
      await this.reloadBranch();
      this.say(`Showing version ${this.siblings(message).indexOf(message) + 1}.`);
    } catch (error) {
      showNotice(this.notices, error);
    }
  }

  edit(message) {
    const view = this.views.get(message.id);
    if (!view || view.article.querySelector(".edit-form")) return;
    const area = h("textarea", { class: "edit-input", "aria-label": "Edit message", rows: "3" });
    area.value = message.content;
    const cancel = () => {
      form.remove();
      view.body.hidden = false;
      view.actions.hidden = false;
    };
    const save = async () => {
      const content = area.value.trim();
      if (!content || content === message.content) return cancel();
      if (await this.send(content, message.parent_id)) return;
      area.focus();
    };
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        save();
      } else if (event.key === "Escape") {
        event.stopPropagation();
        cancel();
      }
    });
    const form = h(
      "form",
      { class: "edit-form", onSubmit: (event) => { event.preventDefault(); save(); } },
      area,
      h("div", { class: "edit-buttons" }, h("button", { type: "button", onClick: cancel }, "Cancel"), h("button", { type: "submit", class: "primary" }, "Send")),
    );
    view.body.hidden = true;
    view.actions.hidden = true;
    view.article.append(form);
    area.focus();
  }

  async rate(message, rating) {
    const next = message.feedback === rating ? null : rating;
    try {
      const updated = await this.api.request("PUT", `/v1/messages/${message.id}/feedback`, { body: { rating: next } });
      message.feedback = updated.feedback;
      this.update(message, true);
      this.say(next ? "Thanks for the feedback." : "Rating removed.");
    } catch (error) {
      showNotice(this.notices, error);
    }
  }

  async share() {
    if (!this.conversation) return;
    let share;
    try {
      share = await this.api.request("POST", `/v1/conversations/${this.conversation.id}/shares`);
    } catch (error) {
      showNotice(this.notices, error);
      return;
    }
    const field = h("input", { type: "text", id: "share-url", class: "share-url", readonly: true, value: share.url });
    const copy = h("button", { type: "button", class: "copy-link", onClick: () => copyText(share.url, copy) }, icon("copy"), h("span", { text: "Copy link" }));
    await modal(
      "Share this conversation",
      [
        h("p", { text: "Anyone with the link can read the conversation as it is now (without the reasoning). Later messages are not shared." }),
        h("label", { for: "share-url", text: "Link" }),
        h("div", { class: "share-row" }, field, copy),
      ],
      [{ label: "Done", value: "done", primary: true }],
    );
  }

  /** The conversation's new title (renamed in the list, or named after its first answer). */
  retitle(conversation) {
    if (this.conversation && conversation.id === this.conversation.id) {
      this.conversation = { ...this.conversation, ...conversation };
      this.title.textContent = conversation.title || "New chat";
      document.title = conversation.title ? `${conversation.title} · Surge` : "Surge";
    }
  }

  forget(id) {
    if (this.conversation?.id === id) {
      this.closeStreams();
      this.conversation = null;
    }
  }
}

