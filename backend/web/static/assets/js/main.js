// The web app's entry point: the share page (/s/{id}), the sign-in page, or the app itself, whose
// screens are addressed by the fragment (#/c/{conversation id}) so the server serves one page.

import { Api } from "./api.js";
import { renderAuth } from "./auth.js";
import { ChatView } from "./chat.js";
import { ConversationList } from "./conversations.js";
import { h } from "./dom.js";
import { renderShare } from "./share.js";

const CONVERSATION = /^#\/c\/([0-9a-f-]{36})$/i;

class Shell {
  constructor(root, api) {
    this.api = api;
    this.chat = new ChatView(api, {
      onCreated: (conversation) => {
        history.pushState(null, "", `#/c/${conversation.id}`);
        this.list.select(conversation.id);
        this.list.refresh();
      },
      onActivity: () => {
        // The list's order changed, and a first answer names its conversation a moment later.
        this.list.refresh();
        clearTimeout(this.titleTimer);
        this.titleTimer = setTimeout(() => this.list.refresh(), 3000);
      },
      onOpenMenu: () => this.setDrawer(true),
    });
    this.list = new ConversationList(api, {
      onNew: () => {
        this.go(null);
      },
      onChanged: (items) => {
        const current = items.find((item) => item.id === this.chat.conversation?.id);
        if (current) this.chat.retitle(current);
      },
      onUpdated: (conversation, deleted) => {
        if (deleted && this.chat.conversation?.id === conversation.id) this.go(null);
        else if (!deleted) this.chat.retitle(conversation);
      },
    });
    const account = h(
      "div",
      { class: "account" },
      h("span", { class: "account-name", text: api.user.display_name || api.user.email || "Signed in" }),
      h("button", { type: "button", class: "link-button logout", onClick: () => api.logOut() }, "Log out"),
    );
    this.sidebar = h("nav", { class: "sidebar", id: "sidebar", "aria-label": "Conversations" }, h("div", { class: "brand", text: "Surge" }), this.list.element, account);
    this.backdrop = h("div", { class: "backdrop", hidden: true, onClick: () => this.setDrawer(false) });
    this.element = h("div", { class: "shell" }, h("a", { class: "skip-link", href: "#composer-input", text: "Skip to the message box" }), this.sidebar, this.backdrop, this.chat.element);
    root.replaceChildren(this.element);
    this.route = () => this.show();
    window.addEventListener("hashchange", this.route);
    window.addEventListener("popstate", this.route);
    this.onKey = (event) => {
      if (event.key === "Escape" && this.element.classList.contains("drawer-open")) this.setDrawer(false);
    };
    document.addEventListener("keydown", this.onKey);
    this.show();
  }

  destroy() {
    window.removeEventListener("hashchange", this.route);
    window.removeEventListener("popstate", this.route);
    document.removeEventListener("keydown", this.onKey);
    clearTimeout(this.titleTimer);
    this.chat.destroy();
    this.list.destroy();
  }

  go(id) {
    history.pushState(null, "", id ? `#/c/${id}` : "#/");
    this.show();
  }

  show() {
    const match = CONVERSATION.exec(location.hash);
    const id = match ? match[1].toLowerCase() : null;
    this.list.select(id);
    this.chat.open(id);
    this.setDrawer(false);
  }

  setDrawer(open) {
    this.element.classList.toggle("drawer-open", open);
    this.backdrop.hidden = !open;
    if (open) this.sidebar.querySelector("input, button")?.focus();
  }
}

function start() {
  const root = document.getElementById("app");
  const api = new Api();
  const share = /^\/s\/([0-9a-f-]{36})\/?$/i.exec(location.pathname);
  if (share) {
    renderShare(root, share[1], api);
    return;
  }
  let shell = null;
  const show = () => {
    shell?.destroy();
    shell = null;
    if (api.user) shell = new Shell(root, api);
    else renderAuth(root, api);
  };
  api.onChange(show);
  show();
}

start();
