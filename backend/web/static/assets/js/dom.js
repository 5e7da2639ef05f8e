// Building the page out of DOM nodes. Text always goes in as text nodes (never parsed as HTML), so
// nothing a user or a model writes can become markup.

const SVG = "http://www.w3.org/2000/svg";

/** An element: h("button", {class: "x", onClick: fn, "aria-label": "Stop"}, "text", child, ...). */
export function h(tag, props, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else if (key.startsWith("on")) element.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key in PROPERTIES) element[key] = value;
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

// Set as properties rather than attributes (the live value, not the initial one).
const PROPERTIES = { value: true, checked: true, disabled: true, hidden: true };

/** Append nodes or strings (strings become text nodes); null, undefined and false are skipped. */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
  return parent;
}

// Icons drawn here (24 x 24, stroked with the text colour): no icon font, no image requests.
const ICONS = {
  menu: "M4 6h16M4 12h16M4 18h16",
  plus: "M12 5v14M5 12h14",
  more: "M5 12h.01M12 12h.01M19 12h.01",
  send: "M12 19V5M5 12l7-7 7 7",
  stop: "M7 7h10v10H7z",
  copy: "M9 9h11v11H9zM5 15H4V4h11v1",
  edit: "M4 20h4L19 9l-4-4L4 16zM14 6l4 4",
  regenerate: "M20 12a8 8 0 1 1-2.3-5.7M20 4v5h-5",
  share: "M12 3v12M7 8l5-5 5 5M5 14v6h14v-6",
  up: "M3 10h4v11H3zM7 10l4-7c1.5 0 2.5 1 2.5 2.5L13 9h6a2 2 0 0 1 2 2.3l-1.3 7.5a2 2 0 0 1-2 1.2H7",
  down: "M21 14h-4V3h4zM17 14l-4 7c-1.5 0-2.5-1-2.5-2.5L11 15H5a2 2 0 0 1-2-2.3l1.3-7.5a2 2 0 0 1 2-1.2H17",
  left: "M15 6l-6 6 6 6",
  right: "M9 6l6 6-6 6",
  pin: "M9 3h6l-1 6 4 4H6l4-4zM12 13v8",
  close: "M6 6l12 12M18 6L6 18",
};

/** An icon, hidden from screen readers (the button carrying it has the label). */
export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", `icon icon-${name}`);
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

/** A button with an icon and an accessible name (shown as a tooltip, and as text when `text` is set). */
export function iconButton(name, label, onClick, { text = false, cls = "" } = {}) {
  return h(
    "button",
    { type: "button", class: `icon-button ${cls}`.trim(), title: label, "aria-label": text ? null : label, onClick },
    icon(name),
    text ? h("span", { text: label }) : null,
  );
}

/** 1 -> "1st", 2 -> "2nd" ... */
export function ordinal(n) {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  return `${n}${{ 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th"}`;
}

/** A random UUIDv4 (crypto.randomUUID needs a secure context; getRandomValues does not). */
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
