// A small Markdown renderer for answers that builds DOM nodes and never parses HTML: whatever the model
// writes (`<img onerror=...>`, `<script>`) ends up as visible text. It covers what chat answers use:
// headings, paragraphs, emphasis, inline code, fenced code blocks, lists, block quotes, rules, and links,
// which are kept only when they point to http(s). Half-written input (a stream) renders sensibly: an
// unclosed code fence is a code block so far, an unclosed `**` is plain text.

import { h, icon } from "./dom.js";

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/;
const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const ITEM = /^( {0,3})([-*+]|(\d{1,9})[.)])\s+(.*)$/;

/** A DocumentFragment rendering `text`. */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  blocks(String(text).replace(/\r\n?/g, "\n").split("\n"), fragment);
  return fragment;
}

function blocks(lines, parent) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let match;
    if (!line.trim()) {
      i += 1;
    } else if ((match = FENCE.exec(line))) {
      const fence = match[1];
      const code = [];
      i += 1;
      while (i < lines.length && !isClosingFence(lines[i], fence)) code.push(lines[i++]);
      i += 1; // the closing fence (or the end)
      parent.append(codeBlock(code.join("\n"), match[2]));
    } else if ((match = HEADING.exec(line))) {
      parent.append(inline(match[2] || "", h(`h${Math.min(match[1].length + 2, 6)}`)));
      i += 1;
    } else if (RULE.test(line)) {
      parent.append(h("hr"));
      i += 1;
    } else if (QUOTE.test(line)) {
      const quoted = [];
      while (i < lines.length && (match = QUOTE.exec(lines[i]))) {
        quoted.push(match[1]);
        i += 1;
      }
      const quote = h("blockquote");
      blocks(quoted, quote);
      parent.append(quote);
    } else if (ITEM.test(line)) {
      i = list(lines, i, parent);
    } else {
      const paragraph = [line.trim()];
      i += 1;
      while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) paragraph.push(lines[i++].trim());
      parent.append(inline(paragraph.join("\n"), h("p")));
    }
  }
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

function isClosingFence(line, fence) {
  const trimmed = line.trim();
  return trimmed.length >= fence.length && trimmed === fence[0].repeat(trimmed.length);
}

function list(lines, start, parent) {
  const first = ITEM.exec(lines[start]);
  const ordered = first[3] !== undefined;
  const element = h(ordered ? "ol" : "ul");
  if (ordered && first[3] !== "1") element.setAttribute("start", String(Number(first[3])));
  let i = start;
  while (i < lines.length) {
    const match = ITEM.exec(lines[i]);
    if (!match || (match[3] !== undefined) !== ordered) break;
    // An item: its first line, then lines indented under it (a nested list, more text) until a blank
    // line followed by something not indented, or the next item.
    const body = [match[4]];
    i += 1;
    while (i < lines.length) {
      const next = lines[i];
      if (ITEM.test(next) && indent(next) <= match[1].length) break;
      if (!next.trim()) {
        if (i + 1 < lines.length && indent(lines[i + 1]) > match[1].length && lines[i + 1].trim()) {
          body.push("");
          i += 1;
          continue;
        }
        break;
      }
      if (indent(next) === 0 && startsBlock(next)) break;
      body.push(next.replace(/^ {1,4}/, ""));
      i += 1;
    }
    const item = h("li");
    if (body.length === 1 || !body.slice(1).some((entry) => startsBlock(entry) || !entry.trim())) {
      inline(body.join("\n"), item);
    } else {
      blocks(body, item);
    }
    element.append(item);
    // A blank line between items of the same list does not end it.
    if (i < lines.length && !lines[i].trim() && i + 1 < lines.length && ITEM.test(lines[i + 1])) {
      const after = ITEM.exec(lines[i + 1]);
      if ((after[3] !== undefined) === ordered && after[1].length === match[1].length) i += 1;
    }
  }
  parent.append(element);
  return i;
}

function indent(line) {
  return line.length - line.trimStart().length;
}

function codeBlock(code, language) {
  const lang = /^[\w+#.-]{1,30}$/.test(language) ? language : "";
  const codeElement = h("code", { text: code });
  if (lang) codeElement.dataset.language = lang;
  const copy = h(
    "button",
    { type: "button", class: "copy-code", title: "Copy code", "aria-label": "Copy code" },
    icon("copy"),
    h("span", { text: "Copy" }),
  );
  copy.addEventListener("click", () => copyText(code, copy));
  return h("div", { class: "code-block" }, h("div", { class: "code-bar" }, h("span", { text: lang || "code" }), copy), h("pre", {}, codeElement));
}

/** Copy `text` to the clipboard and say so on `button` for a moment. */
export async function copyText(text, button) {
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch {
    // No clipboard API (an insecure context): a hidden textarea and the old command.
    const area = h("textarea", { class: "offscreen", "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    copied = document.execCommand("copy");
    area.remove();
  }
  const label = button?.querySelector("span");
  if (label) {
    const before = label.textContent;
    label.textContent = copied ? "Copied" : "Copy failed";
    setTimeout(() => { label.textContent = before; }, 1500);
  }
  return copied;
}

// --- inline ---------------------------------------------------------------------------------------

const ESCAPABLE = new Set("\\`*_{}[]()#+-.!>~|<");
const BARE_URL = /^https?:\/\/[^\s<>"'`]+/;

/** Render inline Markdown of `text` into `parent` (and return it); `links` false inside a link. */
export function inline(text, parent, links = true) {
  let plain = "";
  const flush = () => {
    if (plain) parent.append(document.createTextNode(plain));
    plain = "";
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\" && ESCAPABLE.has(text[i + 1])) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "`") {
      const run = runLength(text, i, "`");
      const close = findRun(text, i + run, "`", run);
      if (close >= 0) {
        flush();
        let code = text.slice(i + run, close).replace(/\n/g, " ");
        if (code.length > 2 && code.startsWith(" ") && code.endsWith(" ")) code = code.slice(1, -1);
        parent.append(h("code", { text: code }));
        i = close + run;
      } else {
        plain += text.slice(i, i + run);
        i += run;
      }
      continue;
    }
    if (c === "*" || c === "_" || c === "~") {
      const run = runLength(text, i, c);
      const size = c === "~" ? 2 : Math.min(run, 2);
      const opens = (c !== "~" || run === 2) && text[i + run] && !/\s/.test(text[i + run]);
      const intraword = c === "_" && /[\p{L}\p{N}]/u.test(text[i - 1] || "");
      const close = opens && !intraword ? findClosing(text, i + size, c, size) : -1;
      if (close >= 0) {
        flush();
        const tag = c === "~" ? "del" : size === 2 ? "strong" : "em";
        parent.append(inline(text.slice(i + size, close), h(tag), links));
        i = close + size;
      } else {
        plain += text.slice(i, i + run);
        i += run;
      }
      continue;
    }
    if (links && (c === "[" || (c === "!" && text[i + 1] === "["))) {
      const link = parseLink(text, c === "!" ? i + 1 : i);
      if (link) {
        flush();
        // Images are not loaded (nothing is fetched from elsewhere): shown as a link to the picture.
        const label = c === "!" ? link.label || link.url : link.label;
        parent.append(anchor(link.url, label));
        i = link.end;
        continue;
      }
    }
    if (links && (c === "h" || c === "H") && !/[\p{L}\p{N}]/u.test(text[i - 1] || "")) {
      const match = BARE_URL.exec(text.slice(i));
      if (match) {
        const url = match[0].replace(/[.,:;!?)\]]+$/, "");
        flush();
        parent.append(anchor(url, url));
        i += url.length;
        continue;
      }
    }
    plain += c;
    i += 1;
  }
  flush();
  return parent;
}

function runLength(text, start, char) {
  let end = start;
  while (text[end] === char) end += 1;
  return end - start;
}

function findRun(text, from, char, length) {
  for (let i = text.indexOf(char, from); i >= 0; i = text.indexOf(char, i + 1)) {
    const run = runLength(text, i, char);
    if (run === length) return i;
    i += run - 1;
  }
  return -1;
}

function findClosing(text, from, char, size) {
  const delimiter = char.repeat(size);
  for (let i = text.indexOf(delimiter, from); i >= 0; i = text.indexOf(delimiter, i + 1)) {
    if (i === from || /\s/.test(text[i - 1])) continue;
    if (char === "_" && /[\p{L}\p{N}]/u.test(text[i + size] || "")) continue;
    if (size === 1 && text[i + 1] === char) {
      i += runLength(text, i, char) - 1;
      continue;
    }
    return i;
  }
  return -1;
}

function parseLink(text, start) {
  let depth = 0;
  let i = start;
  for (; i < text.length; i += 1) {
    if (text[i] === "\\") i += 1;
    else if (text[i] === "[") depth += 1;
    else if (text[i] === "]" && --depth === 0) break;
  }
  if (i >= text.length || text[i + 1] !== "(") return null;
  const close = text.indexOf(")", i + 2);
  if (close < 0) return null;
  const target = text.slice(i + 2, close).trim().split(/\s+/)[0].replace(/^<(.*)>$/, "$1");
  return { label: text.slice(start + 1, i), url: target, end: close + 1 };
}

/** A link when `url` is http(s), else just its label as text: no javascript:, data: or relative links. */
function anchor(url, label) {
  let parsed = null;
  try {
    parsed = new URL(url);
  } catch {
    parsed = null;
  }
  if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
    return inline(label, document.createDocumentFragment(), false);
  }
  const element = h("a", { href: parsed.href, target: "_blank", rel: "noopener noreferrer nofollow" });
  return inline(label, element, false);
}
