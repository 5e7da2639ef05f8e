// Server-Sent Events read from a fetch() body. EventSource cannot send an Authorization header, and
// Surge's streams need one, so the app parses the stream itself (the WHATWG event-stream format).

/** Yields {event, data, id} for each event of `body` (a ReadableStream of bytes); comments are skipped. */
export async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = "";
  let data = [];
  let id = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let start = 0;
      for (;;) {
        const end = lineEnd(buffer, start);
        if (end < 0) break;
        const line = buffer.slice(start, end);
        start = end + (buffer[end] === "\r" && buffer[end + 1] === "\n" ? 2 : 1);
        if (line === "") {
          if (data.length) yield { event: event || "message", data: data.join("\n"), id };
          event = "";
          data = [];
          id = null;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") event = text;
        else if (field === "data") data.push(text);
        else if (field === "id" && !text.includes("\0")) id = text;
      }
      buffer = buffer.slice(start);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// The end of the line starting at `start`, or -1 when it is not complete yet (a lone "\r" at the end of
// the buffer may be the first half of "\r\n").
function lineEnd(buffer, start) {
  for (let i = start; i < buffer.length; i += 1) {
    if (buffer[i] === "\n") return i;
    if (buffer[i] === "\r") return i + 1 < buffer.length ? i : -1;
  }
  return -1;
}
