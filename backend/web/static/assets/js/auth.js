// Sign up and log in.

import { ApiError } from "./api.js";
import { h } from "./dom.js";
import { clearNotice, showNotice } from "./notice.js";

/** The sign-in page in `root`; the Api's change listener takes over once signed in. */
export function renderAuth(root, api) {
  let mode = "login";
  const notices = h("div", { class: "notices", role: "alert" });
  const email = h("input", { id: "auth-email", type: "email", name: "email", autocomplete: "email", required: true });
  const password = h("input", { id: "auth-password", type: "password", name: "password", autocomplete: "current-password", required: true, minlength: "8" });
  const displayName = h("input", { id: "auth-name", type: "text", name: "display_name", autocomplete: "nickname", maxlength: "100" });
  const nameField = h("div", { class: "field", hidden: true }, h("label", { for: "auth-name", text: "Your name (optional)" }), displayName);
  const submit = h("button", { type: "submit", class: "primary wide" }, "Log in");
  const heading = h("h1", { text: "Log in to Surge" });
  const switchText = h("span");
  const switchButton = h("button", { type: "button", class: "link-button", onClick: () => setMode(mode === "login" ? "signup" : "login") });

  function setMode(next) {
    mode = next;
    const signup = mode === "signup";
    heading.textContent = signup ? "Create your Surge account" : "Log in to Surge";
    submit.textContent = signup ? "Sign up" : "Log in";
    nameField.hidden = !signup;
    password.setAttribute("autocomplete", signup ? "new-password" : "current-password");
    switchText.textContent = signup ? "Already have an account? " : "New to Surge? ";
    switchButton.textContent = signup ? "Log in" : "Create an account";
    clearNotice(notices);
  }

  const form = h(
    "form",
    {
      class: "auth-form",
      onSubmit: async (event) => {
        event.preventDefault();
        clearNotice(notices);
        submit.disabled = true;
        try {
          if (mode === "signup") await api.signUp(email.value.trim(), password.value, displayName.value.trim());
          else await api.logIn(email.value.trim(), password.value);
        } catch (error) {
          showNotice(notices, authError(error, mode));
          password.focus();
        } finally {
          submit.disabled = false;
        }
      },
    },
    heading,
    notices,
    h("div", { class: "field" }, h("label", { for: "auth-email", text: "Email" }), email),
    h("div", { class: "field" }, h("label", { for: "auth-password", text: "Password" }), password, h("p", { class: "field-hint", text: "At least 8 characters." })),
    nameField,
    submit,
    h("p", { class: "auth-switch" }, switchText, switchButton),
  );
  setMode("login");
  root.replaceChildren(h("div", { class: "auth-page" }, h("div", { class: "brand", text: "Surge" }), form));
  email.focus();
}

function authError(error, mode) {
  if (!(error instanceof ApiError)) return error;
  if (error.status === 401) return "Wrong email or password.";
  if (error.status === 409) return "This email already has an account. Log in instead.";
  if (error.code === "validation_error") {
    const fields = error.fields || {};
    if (fields.password) return "The password must be 8 to 256 characters long.";
    if (fields.email) return "That email address doesn't look right.";
    return mode === "signup" ? "Please check the email and password." : "Please check what you entered.";
  }
  return error;
}
