// A shared conversation, readable signed out (GET /v1/shares/{id}, a public route).

import { describeError } from "./api.js";
import { h } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

export async function renderShare(root, shareId, api) {
  const main = h("main", { class: "share-page", id: "main" }, h("p", { class: "loading", text: "Loading…" }));
  root.replaceChildren(
    h("header", { class: "share-header" }, h("a", { class: "brand", href: "/" }, "Surge"), h("span", { class: "share-badge", text: "Shared conversation" })),
    main,
  );
  try {
    const share = await api.request("GET", `/v1/shares/${shareId}`, { auth: false });
    const title = share.title || "A conversation";
    document.title = `${title} · Surge`;
    const date = new Date(share.created_at).toLocaleDateString("en", { year: "numeric", month: "long", day: "numeric" });
    main.replaceChildren(
      h("h1", { text: title }),
      h("p", { class: "share-date", text: `Shared on ${date}` }),
      h(
        "div",
        { class: "messages", "aria-label": "Messages" },
        share.messages.map((message) =>
          h(
            "article",
            { class: `message ${message.role}`, "aria-label": message.role === "user" ? "Question" : "Answer" },
            message.role === "user"
              ? h("div", { class: "bubble", text: message.content })
              : h("div", { class: "answer markdown" }, renderMarkdown(message.content)),
          ),
        ),
      ),
      h("p", { class: "share-cta" }, h("a", { href: "/", text: "Start your own conversation on Surge" })),
    );
  } catch (error) {
    main.replaceChildren(
      h("h1", { text: "This conversation isn't available" }),
      h("p", { text: error.status === 404 ? "The link is wrong, or its owner stopped sharing it." : describeError(error) }),
    );
  }
}
