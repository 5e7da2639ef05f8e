// The Surge API as the app uses it: the signed-in session, its access-token refresh, the error envelope.
//
// Where the tokens live (the threat model is in the README, "The web app"): the session (user, access
// token, refresh token, expiry) is kept in localStorage so that a reload or a second tab stays signed in.
// Any script running on this origin could read it, so none but the app's own may run: the page is served
// with a Content-Security-Policy allowing scripts from this origin only, and model output is rendered as
// text. Tokens never go in a URL and are never logged. Refresh tokens rotate on every use: tabs take a
// Web Lock to refresh one at a time, and adopt the session another tab stored instead of presenting its
// spent token (which would revoke the whole login).

import { randomId, sleep } from "./dom.js";

const STORAGE_KEY = "surge.session";
// Refresh this long before the access token expires (or at 80% of its life, if that is sooner).
const REFRESH_MARGIN_MS = 60_000;

/** An error answer of the API (its envelope), with the seconds to wait when it said so. */
export class ApiError extends Error {
  constructor(status, error, headers) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code || "internal";
    this.fields = error?.fields || null;
    this.requestId = error?.request_id || headers?.get("x-request-id") || null;
    const header = Number(headers?.get("retry-after"));
    this.retryAfter = Number.isFinite(header) && header > 0 ? header : error?.retry_after_s ?? null;
  }
}

/** The request never got an answer (offline, server unreachable, connection dropped). */
export class NetworkError extends Error {}

/** What an error means for the person using the app, in words (never a raw error). */
export function describeError(error) {
  if (error instanceof NetworkError) return "Surge can't be reached. Check your connection.";
  if (!(error instanceof ApiError)) return "Something went wrong.";
  return ERROR_WORDS[error.code] || (error.status >= 500 ? "Something went wrong on our side." : error.message);
}

export const ERROR_WORDS = {
  rate_limited: "You're sending requests too quickly.",
  quota_exceeded: "You've reached your usage limit for now.",
  overloaded: "Surge is very busy right now.",
  upstream_unavailable: "No model server is available right now.",
  signups_paused: "Sign-ups are paused while demand is high.",
  unauthorized: "Your session has ended. Please log in again.",
  not_found: "That conversation no longer exists.",
  conflict: "That can't be done right now.",
  payload_too_large: "That message is too long.",
  validation_error: "That isn't valid.",
  interrupted: "The answer was interrupted.",
  internal: "Something went wrong on our side.",
};

export class Api {
  constructor() {
    this.session = readStored();
    this.listeners = new Set();
    this.refreshing = null;
    this.timer = null;
    this.schedule();
    // Another tab signed in, refreshed or signed out.
    window.addEventListener("storage", (event) => {
      if (event.key !== STORAGE_KEY) return;
      const stored = readStored();
      const wasSignedIn = Boolean(this.session);
      this.session = stored;
      this.schedule();
      if (wasSignedIn !== Boolean(stored)) this.emit();
    });
  }

  get user() {
    return this.session?.user || null;
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  emit() {
    for (const listener of this.listeners) listener(this.user);
  }

  async signUp(email, password, displayName) {
    const body = { email, password };
    if (displayName) body.display_name = displayName;
    this.adopt(await this.request("POST", "/v1/auth/signup", { body, auth: false }));
    this.emit();
  }

  async logIn(email, password) {
    this.adopt(await this.request("POST", "/v1/auth/login", { body: { email, password }, auth: false }));
    this.emit();
  }

  /** Revoke this login on the server (best effort), then forget it here. */
  async logOut() {
    const refreshToken = this.session?.refresh_token;
    try {
      if (refreshToken) await this.request("POST", "/v1/auth/logout", { body: { refresh_token: refreshToken } });
    } catch {
      // Signed out here all the same; the refresh token expires on its own.
    }
    this.forget();
  }

  forget() {
    const wasSignedIn = Boolean(this.session);
    this.session = null;
    localStorage.removeItem(STORAGE_KEY);
    this.schedule();
    if (wasSignedIn) this.emit();
  }

  adopt(session) {
    this.session = {
      user: session.user,
      access_token: session.access_token,
      refresh_token: session.refresh_token,
      issued_at: Date.now(),
      expires_at: Date.now() + session.expires_in * 1000,
    };
    localStorage.setItem(STORAGE_KEY, JSON.stringify(this.session));
    this.schedule();
  }

  /** Refresh ahead of expiry, so that no request has to wait for it. */
  schedule() {
    clearTimeout(this.timer);
    if (!this.session) return;
    const delay = this.refreshAt() - Date.now();
    this.timer = setTimeout(() => this.refresh().catch(() => {}), Math.max(0, delay));
  }

  refreshAt() {
    const { issued_at: issued, expires_at: expires } = this.session;
    const lifetime = expires - (issued || expires - 900_000);
    return expires - Math.min(REFRESH_MARGIN_MS, lifetime * 0.2);
  }

  /** A new access token (and refresh token); one at a time across tabs. */
  refresh() {
    if (!this.refreshing) {
      const run = () => this.refreshOnce();
      const locked = navigator.locks ? navigator.locks.request("surge-refresh", run) : run();
      this.refreshing = locked.finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  async refreshOnce() {
    const stored = readStored();
    if (!stored) {
      this.forget();
      throw new ApiError(401, { code: "unauthorized" });
    }
    if (this.session && stored.refresh_token !== this.session.refresh_token) {
      // Another tab refreshed while this one waited for the lock: its tokens are the current ones.
      this.session = stored;
      this.schedule();
      return;
    }
    this.session = stored;
    try {
      const session = await this.request("POST", "/v1/auth/refresh", {
        body: { refresh_token: stored.refresh_token },
        auth: false,
      });
      this.adopt(session);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) this.forget();
      else this.timer = setTimeout(() => this.refresh().catch(() => {}), 5_000);
      throw error;
    }
  }

  /** A JSON request; resolves to the parsed body (null for 204), rejects with ApiError or NetworkError. */
  async request(method, path, { body, headers = {}, auth = true, signal } = {}) {
    const response = await this.fetch(method, path, { body, headers, auth, signal });
    if (response.status === 204) return null;
    return response.json();
  }

  /** The raw Response of a successful request (for event streams); errors as in request(). */
  async fetch(method, path, { body, headers = {}, auth = true, signal } = {}) {
    for (let attempt = 0; ; attempt += 1) {
      if (auth && this.session && Date.now() >= this.session.expires_at - 5_000) {
        await this.refresh();
      }
      const sent = { ...headers };
      if (body !== undefined) sent["Content-Type"] = "application/json";
      if (auth) {
        if (!this.session) throw new ApiError(401, { code: "unauthorized" });
        sent.Authorization = `Bearer ${this.session.access_token}`;
      }
      let response;
      try {
        response = await fetch(path, {
          method,
          headers: sent,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal,
          cache: "no-store",
        });
      } catch (error) {
        if (error.name === "AbortError") throw error;
        throw new NetworkError(String(error));
      }
      if (response.ok) return response;
      const envelope = await response.json().catch(() => null);
      const error = new ApiError(response.status, envelope?.error, response.headers);
      // An access token the server no longer takes (the clock, a restart): refresh once and try again.
      if (auth && response.status === 401 && attempt === 0 && this.session) {
        await this.refresh();
        continue;
      }
      if (auth && response.status === 401) this.forget();
      throw error;
    }
  }

  /**
   * A POST that creates something (a turn), retried on a lost connection or a 5xx other than 503 with
   * the same Idempotency-Key, so the server creates it at most once however often it is sent.
   */
  async create(path, body, key = randomId()) {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await this.request("POST", path, { body, headers: { "Idempotency-Key": key } });
      } catch (error) {
        const transient =
          error instanceof NetworkError || (error instanceof ApiError && error.status >= 500 && error.status !== 503);
        if (!transient || attempt >= 2) throw error;
        await sleep(500 * 2 ** attempt);
      }
    }
  }
}

function readStored() {
  try {
    const session = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
    return session && session.access_token && session.refresh_token ? session : null;
  } catch {
    return null;
  }
}
