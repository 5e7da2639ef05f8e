// The conversation list: pinned first then most recent (the server's order), search, the archive,
// rename, pin, archive, delete, and more pages fetched with the cursor as the list scrolls.

import { ApiError } from "./api.js";
import { h, icon, iconButton } from "./dom.js";
import { confirmDialog } from "./dialog.js";
import { showNotice } from "./notice.js";

const PAGE = 20;

export class ConversationList {
  constructor(api, { onOpen, onNew, onChanged, onUpdated }) {
    this.api = api;
    this.hooks = { onOpen, onNew, onChanged, onUpdated };
    this.query = "";
    this.archived = false;
    this.items = [];
    this.cursor = null;
    this.loading = null;
    this.generation = 0;
    this.selected = null;

    this.search = h("input", {
      type: "search",
      id: "conversation-search",
      placeholder: "Search",
      autocomplete: "off",
      onInput: () => {
        clearTimeout(this.searchTimer);
        this.searchTimer = setTimeout(() => this.reset(), 250);
      },
    });
    this.archiveToggle = h("button", {
      type: "button",
      class: "chip",
      "aria-pressed": "false",
      onClick: () => {
        this.archived = !this.archived;
        this.archiveToggle.setAttribute("aria-pressed", String(this.archived));
        this.reset();
      },
    }, "Archived");
    this.list = h("ul", { class: "conversation-list", "aria-label": "Conversations" });
    this.sentinel = h("li", { class: "sentinel", "aria-hidden": "true" });
    this.empty = h("p", { class: "list-empty", hidden: true });
    this.notices = h("div", { class: "notices", role: "alert" });
    this.scroller = h("div", { class: "list-scroller" }, this.list, this.empty);
    this.element = h(
      "div",
      { class: "conversations" },
      h("button", { type: "button", class: "new-chat", onClick: () => this.hooks.onNew() }, icon("plus"), h("span", { text: "New chat" })),
      h("div", { class: "list-tools" },
        h("label", { for: "conversation-search", class: "visually-hidden", text: "Search conversations" }),
        this.search,
        this.archiveToggle),
      this.notices,
      this.scroller,
    );
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) this.more();
    }, { root: this.scroller, rootMargin: "200px" });
    this.reset();
  }

  destroy() {
    this.observer.disconnect();
    clearTimeout(this.searchTimer);
  }

  /** Start the list again from its first page (after a search, a change, a new turn). */
  reset() {
    this.generation += 1;
    this.items = [];
    this.cursor = null;
    this.done = false;
    this.loading = null;
    this.list.replaceChildren();
    return this.more();
  }

  refresh() {
    return this.reset();
  }

  select(id) {
    this.selected = id;
    for (const row of this.list.querySelectorAll("li[data-id]")) {
      const link = row.querySelector(".conversation-link");
      if (row.dataset.id === id) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  /** The next page, if there is one and none is on its way. */
  more() {
    if (this.loading || this.done) return this.loading;
    const generation = this.generation;
    const params = new URLSearchParams({ limit: String(PAGE), archived: String(this.archived) });
    const query = this.search.value.trim();
    if (query) params.set("q", query);
    if (this.cursor) params.set("cursor", this.cursor);
    this.loading = this.api
      .request("GET", `/v1/conversations?${params}`)
      .then((page) => {
        if (generation !== this.generation) return;
        this.items.push(...page.data);
        this.cursor = page.next_cursor;
        this.done = !page.next_cursor;
        this.sentinel.remove();
        for (const conversation of page.data) this.list.append(this.row(conversation));
        if (!this.done) this.list.append(this.sentinel);
        this.observer.disconnect();
        if (!this.done) this.observer.observe(this.sentinel);
        this.empty.hidden = this.items.length > 0;
        this.empty.textContent = query ? "No conversation matches." : this.archived ? "Nothing archived." : "No conversations yet.";
        this.select(this.selected);
        this.hooks.onChanged?.(this.items);
      })
      .catch((error) => {
        if (generation === this.generation && !(error instanceof ApiError && error.status === 401)) {
          showNotice(this.notices, error, { retry: () => this.more() });
        }
      })
      .finally(() => {
        if (generation === this.generation) this.loading = null;
      });
    return this.loading;
  }

  row(conversation) {
    const title = conversation.title || "New chat";
    const link = h(
      "a",
      { class: "conversation-link", href: `#/c/${conversation.id}` },
      conversation.pinned ? h("span", { class: "pin", title: "Pinned" }, icon("pin"), h("span", { class: "visually-hidden", text: "Pinned: " })) : null,
      h("span", { class: "conversation-title", text: title }),
    );
    const menuButton = iconButton("more", `Actions for ${title}`, () => this.toggleMenu(row), { cls: "row-menu-button" });
    menuButton.setAttribute("aria-haspopup", "true");
    menuButton.setAttribute("aria-expanded", "false");
    const row = h("li", { "data-id": conversation.id, class: conversation.pinned ? "pinned" : "" }, link, menuButton);
    row.conversation = conversation;
    return row;
  }

  toggleMenu(row) {
    const open = row.querySelector(".row-menu");
    for (const menu of this.list.querySelectorAll(".row-menu")) this.closeMenu(menu.parentElement);
    if (open) return;
    const conversation = row.conversation;
    const act = (label, action) => h("button", { type: "button", role: "menuitem", onClick: () => { this.closeMenu(row); action(); } }, label);
    const menu = h(
      "div",
      { class: "row-menu", role: "menu", "aria-label": "Conversation actions" },
      act("Rename", () => this.rename(row)),
      act(conversation.pinned ? "Unpin" : "Pin", () => this.update(conversation, { pinned: !conversation.pinned })),
      act(conversation.archived ? "Unarchive" : "Archive", () => this.update(conversation, { archived: !conversation.archived })),
      act("Delete", () => this.remove(conversation)),
    );
    menu.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        this.closeMenu(row);
        row.querySelector(".row-menu-button").focus();
      }
    });
    row.append(menu);
    row.querySelector(".row-menu-button").setAttribute("aria-expanded", "true");
    menu.querySelector("button").focus();
  }

  closeMenu(row) {
    row.querySelector(".row-menu")?.remove();
    row.querySelector(".row-menu-button")?.setAttribute("aria-expanded", "false");
  }

  rename(row) {
    const conversation = row.conversation;
    const input = h("input", { type: "text", class: "rename-input", value: conversation.title || "", maxlength: "200", "aria-label": "New title" });
    const link = row.querySelector(".conversation-link");
    link.hidden = true;
    row.prepend(input);
    input.focus();
    input.select();
    let finished = false;
    const finish = async (save) => {
      if (finished) return;
      finished = true;
      input.remove();
      link.hidden = false;
      const title = input.value.trim();
      if (save && title && title !== conversation.title) await this.update(conversation, { title });
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") finish(true);
      if (event.key === "Escape") {
        event.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
  }

  async update(conversation, changes) {
    try {
      const updated = await this.api.request("PATCH", `/v1/conversations/${conversation.id}`, { body: changes });
      await this.reset();
      this.hooks.onUpdated?.(updated, false);
    } catch (error) {
      showNotice(this.notices, error);
    }
  }

  async remove(conversation) {
    const title = conversation.title || "New chat";
    const sure = await confirmDialog(`Delete "${title}"?`, "Its messages and share links are deleted too.", "Delete");
    if (!sure) return;
    try {
      await this.api.request("DELETE", `/v1/conversations/${conversation.id}`);
      await this.reset();
      this.hooks.onUpdated?.(conversation, true);
    } catch (error) {
      showNotice(this.notices, error);
    }
  }
}
