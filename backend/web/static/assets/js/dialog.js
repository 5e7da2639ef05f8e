// Modal dialogs on <dialog> (focus is trapped and Esc closes them, natively).

import { h } from "./dom.js";

/** A modal with `title`, `body` nodes and `buttons` ([{label, value, primary}]); resolves to the value
 * of the button pressed (null when dismissed). */
export function modal(title, body, buttons) {
  return new Promise((resolve) => {
    const heading = h("h2", { id: "dialog-title", text: title });
    const dialog = h(
      "dialog",
      { class: "modal", "aria-labelledby": "dialog-title" },
      heading,
      ...body,
      h(
        "div",
        { class: "modal-buttons" },
        buttons.map((button) =>
          h("button", { type: "button", class: button.primary ? "primary" : "", onClick: () => dialog.close(button.value) }, button.label),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "" ? null : dialog.returnValue);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export async function confirmDialog(title, text, action) {
  const answer = await modal(title, [h("p", { text })], [
    { label: "Cancel", value: "" },
    { label: action, value: "yes", primary: true },
  ]);
  return answer === "yes";
}
