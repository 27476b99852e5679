// The client of conductor's control API: `invoke` a channel, listen `on` events, `quit`.
// It runs in Node 18+, browsers and Electron renderers alike, so it uses only `fetch`,
// `EventSource` and timers; reading `ipc.json` and the faster requests over node:net (Node
// only) live in ./node.js, imported on demand. `launch` (spawning conductor) is the separate entry point ./launch.js.

import { CHANNELS, EVENTS } from "./protocol.js";
import { EventConnection, errorText, openWithEventSource, openWithFetch } from "./sse.js";

export { CHANNELS, EVENTS };

/** A request conductor refused (`status` ≥ 400), or one that never reached it (`status` 0). */
export class ConductorError extends Error {
  constructor(message, { status, channel, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "ConductorError";
    this.status = status;
    this.channel = channel;
  }
}

const isNode = typeof process !== "undefined" && Boolean(process.versions?.node);

/**
 * A client of one conductor: `{ dataDir }` reads `<dataDir>/ipc.json` (Node only) and reads
 * it again when conductor stops answering (a restarted conductor has a new port and token);
 * `{ url, token }` talks to that address.
 */
export async function connect(options = {}) {
  const { dataDir, url, token } = options;
  if (dataDir !== undefined) {
    const node = await import("./node.js");
    const info = await node.readIpcInfo(dataDir);
    return new Client({ ...info, ...options, reload: () => node.readIpcInfo(dataDir), node });
  }
  if (typeof url !== "string" || typeof token !== "string") {
    throw new TypeError("connect() needs { dataDir } or { url, token }");
  }
  return new Client({ ...options, url: url.replace(/\/+$/, "") });
}

export class Client {
  /** Use `connect()`; this constructor is for `launch()` and tests. */
  constructor(options) {
    const { url, token, pid, reload, node, hasExited, transport, backoff } = options;
    this.url = url;
    this.token = token;
    this.pid = pid;
    this.reloadInfo = reload;
    this.node = node;
    this.hasExited = hasExited;
    this.onStreamOpen = options.onStreamOpen;
    this.onStreamError = options.onStreamError;
    this.transport = transport ?? (isNode || !globalThis.EventSource ? "fetch" : "eventsource");
    this.backoff = backoff;
    this.listeners = new Map();
    this.connection = undefined;
  }

  /**
   * `POST /ipc/<channel>` with `payload` as the JSON body (none when `undefined`), resolving
   * with the parsed response, like Electron's `ipcRenderer.invoke`.
   */
  async invoke(channel, payload) {
    const post = this.post ?? (await this.loadPost());
    const send = () =>
      post(`${this.url}/ipc/${channel}`, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${this.token}`,
          ...(payload === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: payload === undefined ? undefined : JSON.stringify(payload),
      });
    let response;
    try {
      response = await send();
    } catch (error) {
      // Not delivered (refused connection), so sending it again cannot do it twice.
      if (!(await this.refresh())) {
        throw new ConductorError(`conductor at ${this.url} is not reachable: ${error.message}`, {
          status: 0,
          channel,
          cause: error,
        });
      }
      response = await send();
    }
    // 401 with a token a restarted conductor replaced: refused before anything ran.
    if (response.status === 401 && (await this.refresh())) response = await send();
    const text = await response.text();
    if (!response.ok) {
      throw new ConductorError(errorText(text) || `HTTP ${response.status}`, {
        status: response.status,
        channel,
      });
    }
    return text === "" ? undefined : JSON.parse(text);
  }

  /**
   * How `invoke` sends: `fetch` in a browser; in Node, ./http1.js, a lean HTTP/1.1 client on
   * node:net with kept-alive sockets, because undici's `fetch` costs about twice the round trip
   * on loopback and node:http's machinery still kept p99 over 1 ms (issue 17).
   */
  async loadPost() {
    if (isNode) {
      const node = this.node ?? (await import("./node.js"));
      this.post = node.post;
    } else {
      this.post = (url, init) => fetch(url, init);
    }
    return this.post;
  }

  /** Re-reads ipc.json (a `{ dataDir }` client only); true when it names another instance. */
  async refresh() {
    if (!this.reloadInfo) return false;
    try {
      const info = await this.reloadInfo();
      if (info.url === this.url && info.token === this.token) return false;
      Object.assign(this, { url: info.url, token: info.token, pid: info.pid });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Calls `listener(payload, { event, id })` for each `event`; returns the function that
   * unsubscribes it. All listeners share one `GET /events` stream, opened with the first and
   * closed with the last.
   */
  on(event, listener) {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    // A wrapper per subscription, so one function subscribed twice is unsubscribed once.
    const entry = { listener };
    set.add(entry);
    this.ensureConnection();
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      set.delete(entry);
      if (set.size === 0) this.listeners.delete(event);
      if (this.listeners.size === 0) {
        this.connection?.close();
        this.connection = undefined;
      }
    };
  }

  ensureConnection() {
    if (this.connection) return;
    const open =
      this.transport === "eventsource"
        ? openWithEventSource([...new Set([...EVENTS, ...this.listeners.keys()])])
        : openWithFetch;
    const connection = new EventConnection({
      open: async (lastEventId, onEvent, signal, onOpen) => {
        try {
          await open(this, lastEventId, onEvent, signal, onOpen);
        } catch (error) {
          await this.refresh();
          throw error;
        }
        // The stream ended: conductor may be gone, and a new one would be in ipc.json.
        await this.refresh();
      },
      onEvent: (message) => this.dispatch(message),
      onOpen: () => this.onStreamOpen?.(),
      onError: (error) => this.onStreamError?.(error),
      backoff: this.backoff,
    });
    this.connection = connection;
    connection.start();
  }

  dispatch({ id, event, data }) {
    const set = this.listeners.get(event);
    if (!set) return;
    let payload;
    try {
      payload = JSON.parse(data);
    } catch {
      payload = data;
    }
    for (const { listener } of [...set]) {
      try {
        listener(payload, { event, id });
      } catch (error) {
        // One listener's exception must not starve the others, nor kill the stream.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  /** Stops listening to every event and closes the event stream. */
  close() {
    this.listeners.clear();
    this.connection?.close();
    this.connection = undefined;
  }

  /**
   * `app:quit`, then resolves once conductor has exited: the launched child's exit, else (Node)
   * its pid gone, else its control API refusing connections. Rejects after `timeoutMs`.
   */
  async quit({ timeoutMs = 30_000 } = {}) {
    await this.invoke("app:quit");
    this.close();
    const deadline = Date.now() + timeoutMs;
    const gone = this.hasExited
      ? this.hasExited
      : this.node && this.pid
        ? () => !this.node.isAlive(this.pid)
        : () => this.unreachable();
    for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
      if (await gone()) return;
      if (Date.now() > deadline) {
        throw new ConductorError(`conductor did not exit within ${timeoutMs} ms of app:quit`, {
          status: 0,
          channel: "app:quit",
        });
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  async unreachable() {
    try {
      await fetch(`${this.url}/events`, { method: "HEAD" });
      return false;
    } catch {
      return true;
    }
  }
}
