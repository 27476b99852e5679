// A lean HTTP/1.1 client over node:net, for `invoke` in Node: a pool of kept-alive sockets per
// origin, one request at a time on each, and an incremental response parser. It exists because
// node:http's own machinery put invoke's p99 on loopback over 1 ms (issue 17) where a bare
// socket stays well under it. It deliberately does no TLS, proxies, redirects, compression,
// pipelining or streaming of bodies: conductor's control API is plain HTTP/1.1 on loopback and
// its requests and responses are small JSON documents.

import net from "node:net";

/** Bytes of a status line and headers, or of one chunk-size or trailer line, before we give up. */
const HEAD_LIMIT = 64 * 1024;
const LINE_LIMIT = 8 * 1024;

/**
 * A larger body is sent with `Expect: 100-continue`, after the server's go-ahead (or after
 * CONTINUE_WAIT_MS without one). A server refusing it early (conductor's 413 is over 64 KiB)
 * then answers before it is sent: else its close, with the body unread, resets the
 * connection, and the EPIPE of our write would destroy the socket before its answer is read
 * (nodejs/node#12339). A smaller body goes in the request's one write, the fast path.
 */
const LARGE_BODY = 64 * 1024;
const CONTINUE_WAIT_MS = 1000;

const HEAD_END = Buffer.from("\r\n\r\n");
const CRLF = Buffer.from("\r\n");
const EMPTY = Buffer.alloc(0);
const UNSAFE = /[\r\n\0]/;

// Parser states.
const HEAD = 0;
const BODY = 1;
const CHUNK_SIZE = 2;
const CHUNK_DATA = 3;
const CHUNK_END = 4;
const TRAILERS = 5;
const UNTIL_CLOSE = 6;
const DONE = 7;

/** A response that is not HTTP/1.x as we read it. */
export class ParseError extends Error {
  constructor(message) {
    super(message);
    this.name = "ParseError";
    this.code = "HPE_INVALID";
  }
}

/**
 * Reads one HTTP/1.x response from the pieces of a byte stream, however they are cut.
 * `push(chunk)` is true once the response is complete: `response` is then
 * `{ status, headers, body, keepAlive }` (header names lowercase, `body` a Buffer) and `extra`
 * counts the bytes after it; `onContinue` is called on an interim 100 Continue. `finish()` is for the end of the stream: true when that ends the
 * response (a body delimited by the connection's close). Malformed input throws a ParseError.
 */
export class ResponseParser {
  constructor(method = "GET", onContinue = undefined) {
    this.method = method;
    this.onContinue = onContinue;
    this.state = HEAD;
    this.pending = EMPTY; // the start of a line (or head) whose end has not arrived
    this.remaining = 0; // bytes still to come of the body or of the current chunk
    this.trailerBytes = 0;
    this.chunks = [];
    this.head = undefined;
    this.response = undefined;
    this.extra = 0;
  }

  push(chunk) {
    if (this.state === DONE) {
      this.extra += chunk.length;
      return true;
    }
    let data = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = EMPTY;
    let offset = 0;
    while (this.state !== DONE) {
      if (this.state === BODY || this.state === CHUNK_DATA) {
        const available = data.length - offset;
        if (available === 0) return false;
        const take = Math.min(available, this.remaining);
        this.chunks.push(data.subarray(offset, offset + take));
        offset += take;
        this.remaining -= take;
        if (this.remaining === 0) {
          if (this.state === BODY) this.complete();
          else this.state = CHUNK_END;
        }
      } else if (this.state === UNTIL_CLOSE) {
        if (offset < data.length) this.chunks.push(data.subarray(offset));
        return false;
      } else if (this.state === CHUNK_END) {
        if (data.length - offset < 2) {
          this.pending = data.subarray(offset);
          return false;
        }
        if (data[offset] !== 0x0d || data[offset + 1] !== 0x0a) {
          throw new ParseError("a chunk's data is not followed by CRLF");
        }
        offset += 2;
        this.state = CHUNK_SIZE;
      } else {
        // HEAD, CHUNK_SIZE, TRAILERS: up to a terminator that may not have arrived yet.
        const terminator = this.state === HEAD ? HEAD_END : CRLF;
        const end = data.indexOf(terminator, offset);
        if (end === -1) {
          const limit = this.state === HEAD ? HEAD_LIMIT : LINE_LIMIT;
          if (data.length - offset > limit) {
            throw new ParseError(`response ${this.state === HEAD ? "head" : "line"} over ${limit} bytes`);
          }
          this.pending = data.subarray(offset);
          return false;
        }
        const text = data.toString("latin1", offset, end);
        offset = end + terminator.length;
        if (this.state === HEAD) this.onHead(text);
        else if (this.state === CHUNK_SIZE) this.onChunkSize(text);
        else this.onTrailer(text);
      }
    }
    this.extra = data.length - offset;
    return true;
  }

  finish() {
    if (this.state === UNTIL_CLOSE) this.complete();
    return this.state === DONE;
  }

  onHead(text) {
    const lines = text.split("\r\n");
    const match = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0]);
    if (!match) throw new ParseError(`not an HTTP/1.x status line: ${JSON.stringify(lines[0].slice(0, 80))}`);
    const status = Number(match[2]);
    const headers = {};
    for (let i = 1; i < lines.length; i += 1) {
      const line = lines[i];
      const colon = line.indexOf(":");
      if (colon <= 0 || /[\s]/.test(line.slice(0, colon))) {
        throw new ParseError(`not a header line: ${JSON.stringify(line.slice(0, 80))}`);
      }
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = Object.hasOwn(headers, name) ? `${headers[name]}, ${value}` : value;
    }
    // An interim response (100 Continue, 103 Early Hints): the real one follows.
    if (status >= 100 && status < 200 && status !== 101) {
      if (status === 100) this.onContinue?.();
      return;
    }
    const tokens = (headers.connection ?? "").toLowerCase().split(",").map((token) => token.trim());
    const keepAlive =
      status !== 101 && (match[1] === "1" ? !tokens.includes("close") : tokens.includes("keep-alive"));
    this.head = { status, headers, keepAlive };

    if (this.method === "HEAD" || status === 204 || status === 304 || status === 101) {
      this.complete();
    } else if (Object.hasOwn(headers, "transfer-encoding")) {
      const codings = headers["transfer-encoding"].toLowerCase().split(",");
      if (codings[codings.length - 1].trim() === "chunked") {
        this.state = CHUNK_SIZE;
      } else {
        this.untilClose();
      }
    } else if (Object.hasOwn(headers, "content-length")) {
      const values = new Set(headers["content-length"].split(",").map((value) => value.trim()));
      const [value] = values;
      if (values.size !== 1 || !/^\d{1,15}$/.test(value)) {
        throw new ParseError(`invalid Content-Length: ${JSON.stringify(headers["content-length"])}`);
      }
      this.remaining = Number(value);
      if (this.remaining === 0) this.complete();
      else this.state = BODY;
    } else {
      this.untilClose();
    }
  }

  untilClose() {
    this.head.keepAlive = false;
    this.state = UNTIL_CLOSE;
  }

  onChunkSize(line) {
    const semicolon = line.indexOf(";");
    const size = (semicolon === -1 ? line : line.slice(0, semicolon)).trim();
    if (!/^[0-9a-fA-F]{1,12}$/.test(size)) {
      throw new ParseError(`invalid chunk size line: ${JSON.stringify(line.slice(0, 80))}`);
    }
    this.remaining = parseInt(size, 16);
    this.state = this.remaining === 0 ? TRAILERS : CHUNK_DATA;
  }

  onTrailer(line) {
    // Trailer fields are read past, not kept: conductor sends none and nothing here needs them.
    if (line === "") {
      this.complete();
      return;
    }
    this.trailerBytes += line.length;
    if (this.trailerBytes > HEAD_LIMIT) throw new ParseError(`trailers over ${HEAD_LIMIT} bytes`);
  }

  complete() {
    const body = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks = [];
    this.response = { ...this.head, body };
    this.state = DONE;
  }
}

/**
 * Sockets to one or more HTTP/1.1 servers: `post(url, init)` is `fetch`'s shape for a string
 * body, resolving with `{ status, ok, headers, text() }`.
 * Per origin (host:port), each request in flight has a socket of its own, up to `maxSockets`
 * (more wait, in order, for one to be free: conductor serves 256 connections at once and
 * closes more unread); a finished one is kept (the last freed is the next used, at most
 * `maxIdle`), unrefed so it never keeps the process alive, and closed after `idleTimeoutMs`
 * without use.
 */
export class Agent {
  constructor({ maxSockets = 64, maxIdle = 16, idleTimeoutMs = 5_000 } = {}) {
    this.maxSockets = maxSockets;
    this.maxIdle = maxIdle;
    this.idleTimeoutMs = idleTimeoutMs;
    this.pools = new Map();
    this.targets = new Map();
    this.destroyed = false;
  }

  post(url, { method = "GET", headers = {}, body } = {}) {
    return new Promise((resolve, reject) => {
      const target = this.target(url);
      const payload = body ?? "";
      if (typeof payload !== "string" && !(payload instanceof Uint8Array)) {
        throw new TypeError("body must be a string or a Uint8Array");
      }
      if (!/^[A-Za-z]+$/.test(method)) throw new TypeError(`invalid method ${JSON.stringify(method)}`);
      let head = `${method} ${target.path} HTTP/1.1\r\nHost: ${target.host}\r\n`;
      for (const name in headers) {
        const lower = name.toLowerCase();
        if (lower === "host" || lower === "content-length") continue;
        const value = String(headers[name]);
        if (UNSAFE.test(name) || UNSAFE.test(value) || name.includes(":")) {
          throw new TypeError(`invalid header ${JSON.stringify(name)}`);
        }
        head += `${name}: ${value}\r\n`;
      }
      const length = typeof payload === "string" ? Buffer.byteLength(payload) : payload.length;
      const exchange = { method: method.toUpperCase(), resolve, reject };
      if (length > LARGE_BODY) {
        exchange.data = `${head}Content-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`;
        exchange.body = payload;
      } else {
        head += `Content-Length: ${length}\r\n\r\n`;
        // One write, so one segment: the request never waits on a delayed ACK.
        exchange.data =
          typeof payload === "string" ? head + payload : Buffer.concat([Buffer.from(head), payload]);
      }
      target.pool.send(exchange);
    });
  }

  /** `url`'s pool, Host header and request target; remembered, as a client posts to few URLs. */
  target(url) {
    let target = this.targets.get(url);
    if (target !== undefined) return target;
    const parsed = new URL(url);
    if (parsed.protocol !== "http:") throw new TypeError(`${url}: only http: URLs are supported`);
    const hostname = parsed.hostname;
    const host = hostname.startsWith("[") ? hostname.slice(1, -1) : hostname;
    target = {
      pool: this.pool(host, Number(parsed.port || 80)),
      host: parsed.host,
      path: `${parsed.pathname}${parsed.search}`,
    };
    if (this.targets.size >= 256) this.targets.clear();
    this.targets.set(url, target);
    return target;
  }

  pool(host, port) {
    const key = `${host}:${port}`;
    let pool = this.pools.get(key);
    if (!pool) this.pools.set(key, (pool = new Pool(this, host, port)));
    return pool;
  }

  /** `{ "<host>:<port>": { idle, busy } }`: how many sockets are open (for tests). */
  sockets() {
    const counts = {};
    for (const [key, pool] of this.pools) {
      if (pool.idle.length + pool.busy.size > 0) {
        counts[key] = { idle: pool.idle.length, busy: pool.busy.size };
      }
    }
    return counts;
  }

  /** Closes every socket; requests in flight or waiting reject. */
  destroy() {
    this.destroyed = true;
    for (const pool of this.pools.values()) {
      for (const exchange of pool.queue.splice(0)) exchange.reject(new Error("the agent was destroyed"));
      for (const connection of [...pool.idle, ...pool.busy]) connection.socket.destroy();
    }
  }
}

class Pool {
  constructor(agent, host, port) {
    this.agent = agent;
    this.host = host;
    this.port = port;
    this.idle = []; // oldest first: reuse pops the newest, the sweep closes from the front
    this.busy = new Set();
    this.queue = []; // requests waiting for a socket, when maxSockets are busy
    this.sweep = undefined;
  }

  send(exchange) {
    let connection;
    while ((connection = this.idle.pop()) !== undefined && !connection.usable()) {
      connection.socket.destroy();
    }
    if (connection === undefined) {
      if (this.busy.size >= this.agent.maxSockets) {
        this.queue.push(exchange);
        return;
      }
      connection = new Connection(this);
      exchange.retryable = false;
    } else {
      // The server may have closed it since; if so it never read this request.
      exchange.retryable = !exchange.retried;
    }
    this.busy.add(connection);
    connection.start(exchange);
  }

  /** The request met a socket the server had closed: once more, on a new one. */
  retry(exchange) {
    exchange.retried = true;
    const connection = new Connection(this);
    exchange.retryable = false;
    this.busy.add(connection);
    connection.start(exchange);
  }

  release(connection) {
    const next = this.queue.shift();
    if (next !== undefined) {
      next.retryable = !next.retried;
      connection.start(next);
      return;
    }
    this.busy.delete(connection);
    connection.idleSince = Date.now();
    connection.socket.unref();
    this.idle.push(connection);
    if (this.idle.length > this.agent.maxIdle) this.idle.shift().socket.destroy();
    this.armSweep();
  }

  forget(connection) {
    this.busy.delete(connection);
    const index = this.idle.indexOf(connection);
    if (index !== -1) this.idle.splice(index, 1);
    while (this.queue.length > 0 && this.busy.size < this.agent.maxSockets) {
      this.send(this.queue.shift());
    }
  }

  // One unrefed timer per pool, not one per socket and request: it fires when the oldest
  // idle socket reaches its limit and closes every socket that has.
  armSweep() {
    if (this.sweep !== undefined || this.idle.length === 0) return;
    const wait = Math.max(0, this.idle[0].idleSince + this.agent.idleTimeoutMs - Date.now());
    this.sweep = setTimeout(() => {
      this.sweep = undefined;
      const limit = Date.now() - this.agent.idleTimeoutMs;
      while (this.idle.length > 0 && this.idle[0].idleSince <= limit) {
        this.idle.shift().socket.destroy();
      }
      this.armSweep();
    }, wait);
    this.sweep.unref();
  }
}

class Connection {
  constructor(pool) {
    this.pool = pool;
    this.exchange = undefined;
    this.error = undefined;
    this.idleSince = 0;
    const socket = net.connect({ host: pool.host, port: pool.port });
    socket.setNoDelay(true);
    socket.on("data", (chunk) => this.onData(chunk));
    // An idle socket the server closed leaves the pool; one with a request in flight does on
    // "close", which settles the request first.
    socket.on("end", () => {
      if (this.exchange === undefined) this.pool.forget(this);
    });
    socket.on("error", (error) => {
      this.error = error;
    });
    socket.on("close", () => this.onClose());
    this.socket = socket;
  }

  /** Closes the socket and takes it out of the pool at once (its "close" event comes later). */
  destroy() {
    this.pool.forget(this);
    this.socket.destroy();
  }

  usable() {
    const { socket } = this;
    return !socket.destroyed && socket.writable && !socket.readableEnded;
  }

  start(exchange) {
    const large = exchange.body !== undefined;
    exchange.parser = new ResponseParser(exchange.method, large ? () => this.sendBody(exchange) : undefined);
    exchange.received = false;
    exchange.bodySent = !large;
    this.exchange = exchange;
    this.socket.ref();
    this.socket.write(exchange.data);
    if (large) exchange.timer = setTimeout(() => this.sendBody(exchange), CONTINUE_WAIT_MS);
  }

  sendBody(exchange) {
    clearTimeout(exchange.timer);
    if (exchange.bodySent || this.exchange !== exchange) return;
    exchange.bodySent = true;
    this.socket.write(exchange.body);
  }

  onData(chunk) {
    const exchange = this.exchange;
    if (exchange === undefined) {
      // Bytes no request asked for: the connection's framing can no longer be trusted.
      this.destroy();
      return;
    }
    exchange.received = true;
    let done;
    try {
      done = exchange.parser.push(chunk);
    } catch (error) {
      this.exchange = undefined;
      clearTimeout(exchange.timer);
      this.destroy();
      exchange.reject(error);
      return;
    }
    if (done) this.settle(exchange);
  }

  settle(exchange) {
    this.exchange = undefined;
    clearTimeout(exchange.timer);
    const { parser } = exchange;
    const { status, headers, body, keepAlive } = parser.response;
    // Answered before its body was sent: the server may still be waiting for it.
    const reusable = keepAlive && exchange.bodySent && parser.extra === 0;
    if (reusable && this.usable()) this.pool.release(this);
    else this.destroy();
    const text = body.toString("utf8");
    exchange.resolve({ status, ok: status >= 200 && status < 300, headers, text: async () => text });
  }

  onClose() {
    const exchange = this.exchange;
    this.exchange = undefined;
    if (exchange !== undefined) this.closedDuring(exchange);
    // After a retry has taken this socket's place, so that a waiting request does not.
    this.pool.forget(this);
  }

  closedDuring(exchange) {
    clearTimeout(exchange.timer);
    if (exchange.parser.finish()) {
      this.settle(exchange);
    } else if (!exchange.received && exchange.retryable && !this.pool.agent.destroyed) {
      this.pool.retry(exchange);
    } else {
      const error =
        this.error ??
        Object.assign(
          new Error(
            exchange.received
              ? "the connection closed in the middle of the response"
              : "the connection closed before any response",
          ),
          { code: "ECONNRESET" },
        );
      exchange.reject(error);
    }
  }
}
