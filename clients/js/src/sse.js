// Server-Sent Events for the client: one parser of the `text/event-stream` format, and one
// shared connection that reconnects with backoff and `Last-Event-ID`.
// No Node-only API here: this file runs in browsers and Electron renderers too.

/**
 * Feeds text chunks of an event stream and calls `dispatch({ id, event, data })` for each
 * complete event, as the HTML standard's parsing rules say (comments, `retry:` and fields
 * without a colon included).
 */
export class SseParser {
  constructor(dispatch) {
    this.dispatch = dispatch;
    this.buffer = "";
    this.event = "";
    this.data = [];
    this.id = undefined;
  }

  push(chunk) {
    this.buffer += chunk;
    let start = 0;
    for (;;) {
      const newline = this.buffer.slice(start).search(/\r\n|\r|\n/);
      if (newline < 0) break;
      const end = start + newline;
      // A lone `\r` at the end of a chunk may be the first half of `\r\n`: wait for more.
      if (this.buffer[end] === "\r" && end + 1 === this.buffer.length) break;
      const width = this.buffer.startsWith("\r\n", end) ? 2 : 1;
      this.line(this.buffer.slice(start, end));
      start = end + width;
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === "") {
      if (this.data.length > 0) {
        this.dispatch({
          id: this.id,
          event: this.event || "message",
          data: this.data.join("\n"),
        });
      }
      this.event = "";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }
}

/** Backoff between reconnection attempts: doubles from `initial` up to `max`. */
export function backoffDelay(attempt, { initial = 100, max = 5000 } = {}) {
  return Math.min(max, initial * 2 ** Math.min(attempt, 16));
}

/**
 * The one event connection of a client. `open(lastEventId, onEvent, signal, onOpen)` connects
 * once, calls `onOpen` when the stream is established and resolves when it ends (rejects when
 * it could not connect); this class repeats it with backoff until `close()`, resuming from
 * the last id it saw.
 */
export class EventConnection {
  constructor({ open, onEvent, onOpen, onError, backoff }) {
    this.openOnce = open;
    this.onEvent = onEvent;
    this.onOpen = onOpen;
    this.onError = onError;
    this.backoff = backoff;
    this.lastEventId = undefined;
    this.controller = undefined;
    this.closed = false;
    this.wake = undefined;
  }

  start() {
    this.controller = new AbortController();
    this.loop(this.controller.signal);
  }

  close() {
    this.closed = true;
    this.controller?.abort();
    this.wake?.();
  }

  async loop(signal) {
    let attempt = 0;
    while (!this.closed) {
      let sawEvent = false;
      try {
        await this.openOnce(
          this.lastEventId,
          (message) => {
            sawEvent = true;
            if (message.id !== undefined) this.lastEventId = message.id;
            this.onEvent(message);
          },
          signal,
          () => this.onOpen?.(),
        );
      } catch (error) {
        if (this.closed) return;
        this.onError?.(error);
      }
      if (this.closed) return;
      // A stream that delivered something was healthy: start the backoff afresh.
      attempt = sawEvent ? 0 : attempt + 1;
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, backoffDelay(attempt, this.backoff));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }
}

/**
 * One connection through `fetch` (Node 18+, or anywhere `fetch` streams a response body), with
 * the token in the `Authorization` header.
 */
export async function openWithFetch({ url, token }, lastEventId, onEvent, signal, onOpen) {
  const headers = { Authorization: `Bearer ${token}`, Accept: "text/event-stream" };
  if (lastEventId !== undefined) headers["Last-Event-ID"] = lastEventId;
  const response = await fetch(`${url}/events`, { headers, signal });
  if (!response.ok) {
    const text = await response.text().catch(() => "");
    throw new Error(`GET /events answered ${response.status}: ${errorText(text)}`);
  }
  onOpen();
  const parser = new SseParser(onEvent);
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      parser.push(decoder.decode(value, { stream: true }));
    }
  } catch (error) {
    // The server closing the stream mid-read is the end of this connection, not a failure.
    if (signal.aborted) return;
    throw error;
  } finally {
    reader.releaseLock?.();
  }
}

/**
 * One connection through the browser's `EventSource`, which cannot send headers: the token
 * goes in `?token=` and the resume point in `?lastEventId=`. Its own reconnection is switched
 * off (closed on the first error) so that backoff and resuming follow the same path as in
 * Node, and a new token (conductor restarted) can be picked up.
 */
export function openWithEventSource(names) {
  return ({ url, token }, lastEventId, onEvent, signal, onOpen) =>
    new Promise((resolve, reject) => {
      const query = new URLSearchParams({ token });
      if (lastEventId !== undefined) query.set("lastEventId", lastEventId);
      const source = new globalThis.EventSource(`${url}/events?${query}`);
      let opened = false;
      const finish = (error) => {
        source.close();
        signal.removeEventListener("abort", onAbort);
        if (error && !opened) reject(error);
        else resolve();
      };
      const onAbort = () => finish();
      signal.addEventListener("abort", onAbort);
      source.onopen = () => {
        opened = true;
        onOpen();
      };
      source.onerror = () => finish(new Error(`could not open ${url}/events`));
      for (const name of names) {
        source.addEventListener(name, (message) =>
          onEvent({ id: message.lastEventId || undefined, event: name, data: message.data }),
        );
      }
    });
}

/** conductor's message from an error body (`{"error": "..."}`), else the text itself. */
export function errorText(text) {
  try {
    const body = JSON.parse(text);
    if (body && typeof body.error === "string") return body.error;
  } catch {
    // Not JSON: a proxy or a crash page; its text is still the best message there is.
  }
  return text;
}
