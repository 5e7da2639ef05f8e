// Notices: what went wrong, in words, with a Retry-After countdown when the server gave one.

import { ApiError, describeError } from "./api.js";
import { h, iconButton } from "./dom.js";

/**
 * Show `error` (or a plain message) in `region` (a live region). With a retry delay the notice counts
 * down ("You can try again in 12 s") and then offers `retry` (when given).
 */
export function showNotice(region, errorOrText, { retry = null, retryLabel = "Try again" } = {}) {
  clearNotice(region);
  const text = typeof errorOrText === "string" ? errorOrText : describeError(errorOrText);
  const wait = errorOrText instanceof ApiError ? errorOrText.retryAfter : null;
  const countdown = h("span", { class: "countdown" });
  const retryButton = retry
    ? h("button", { type: "button", class: "link-button", onClick: () => { clearNotice(region); retry(); } }, retryLabel)
    : null;
  const close = iconButton("close", "Dismiss", () => clearNotice(region), { cls: "small" });
  const notice = h("div", { class: "notice-box", "data-code": errorOrText?.code || "" }, h("span", { text }), " ", countdown, retryButton, close);
  region.append(notice);
  if (wait) {
    const until = Date.now() + wait * 1000;
    if (retryButton) retryButton.hidden = true;
    const tick = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left > 0) {
        countdown.textContent = `You can try again in ${left} s.`;
        return;
      }
      clearInterval(region.noticeTimer);
      countdown.textContent = "You can try again now.";
      if (retryButton) retryButton.hidden = false;
    };
    tick();
    region.noticeTimer = setInterval(tick, 250);
  }
  return notice;
}

export function clearNotice(region) {
  clearInterval(region.noticeTimer);
  region.replaceChildren();
}
