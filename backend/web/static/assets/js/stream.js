// Following an answer's events: GET /v1/messages/{id}/events?after=<last seq seen>, reconnecting after a
// dropped connection from exactly where it stopped, until the terminal `done` or `error` event.

import { ApiError, NetworkError } from "./api.js";
import { readEvents } from "./sse.js";
import { sleep } from "./dom.js";

const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];

export class AnswerStream {
  /**
   * @param api the Api
   * @param messageId the assistant message
   * @param handlers onEvent(name, data, seq) for every event in order; onConnection(state) with
   *   "live" | "reconnecting"; onEnd(error|null) once, after the terminal event (or a fatal error)
   * @param after the seq already applied (0: replay from the start)
   */
  constructor(api, messageId, handlers, after = 0) {
    this.api = api;
    this.messageId = messageId;
    this.handlers = handlers;
    this.seq = after;
    this.finished = false;
    this.closed = false;
    this.controller = new AbortController();
    this.wake = null;
    this.onOnline = () => this.wake?.abort();
    window.addEventListener("online", this.onOnline);
    this.done = this.run();
  }

  /** Stop reading (the answer goes on on the server; nothing is cancelled). */
  close() {
    this.closed = true;
    this.finished = true;
    this.controller.abort();
    window.removeEventListener("online", this.onOnline);
  }

  async run() {
    let failures = 0;
    let fatal = null;
    while (!this.finished) {
      try {
        const response = await this.api.fetch("GET", `/v1/messages/${this.messageId}/events?after=${this.seq}`, {
          signal: this.controller.signal,
        });
        this.handlers.onConnection?.("live");
        for await (const event of readEvents(response.body)) {
          if (this.finished) break;
          const seq = event.id === null ? null : Number(event.id);
          // Resuming with `after` never repeats an event; this guard only keeps that promise locally.
          if (seq !== null && seq <= this.seq) continue;
          if (seq !== null) this.seq = seq;
          failures = 0;
          this.handlers.onEvent(event.event, JSON.parse(event.data), seq);
          if (event.event === "done" || event.event === "error") {
            this.finished = true;
          }
        }
      } catch (error) {
        if (this.finished) break;
        const retryable =
          error instanceof NetworkError ||
          error instanceof TypeError || // the body broke off mid-stream
          error?.name === "AbortError" ||
          (error instanceof ApiError && (error.status >= 500 || error.status === 429));
        if (!retryable) {
          fatal = error;
          break;
        }
      }
      if (this.finished) break;
      // The stream ended without its terminal event, or broke: wait a little, then resume after this.seq.
      this.handlers.onConnection?.("reconnecting");
      this.wake = new AbortController();
      await sleep(BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)], this.wake.signal);
      failures += 1;
    }
    window.removeEventListener("online", this.onOnline);
    if (!this.closed) this.handlers.onEnd?.(fatal);
  }
}
