// src/http1.js, the HTTP/1.1 client `invoke` uses in Node. The parser is fed whole responses,
// every two-piece split, byte by byte and random cuts, with Content-Length, chunked (with
// extensions and trailers) and close-delimited bodies, and malformed input. The agent talks to
// real node:http and node:net servers in this process: a kept-alive socket the server closes
// is retried once on a new one, a fresh one is not, `Connection: close` is honoured, errors in
// the middle of a response reject, a large body waits for 100 Continue, busy sockets are
// capped (the rest wait), idle ones too, closed when idle, and never keep the process alive.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { after, describe, test } from "node:test";

import { Agent, ParseError, ResponseParser } from "../src/http1.js";
import { waitUntil } from "./helpers.js";

const JSON_BODY = '{"ok":"héé"}';
const CONTENT_LENGTH =
  "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" +
  `Content-Length: ${Buffer.byteLength(JSON_BODY)}\r\n` +
  "date: Wed, 02 Dec 2026 14:00:00 GMT\r\n\r\n" +
  JSON_BODY;

const CHUNKED =
  "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Many: a\r\nx-many: b\r\n\r\n" +
  "5;name=value;quoted=\"a;b\"\r\nhello\r\n" +
  "1\r\n \r\n" +
  "A \r\n0123456789\r\n" +
  "0;last\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n";

/** Feeds `pieces` to a new parser and returns it once it is done (fails if it never is). */
function parse(pieces, method = "POST") {
  const parser = new ResponseParser(method);
  let done = false;
  for (const piece of pieces) {
    assert.equal(done, false, "no piece after the end of the response");
    done = parser.push(Buffer.from(piece));
  }
  assert.ok(done, "the response is complete");
  return parser;
}

/** Every way to cut `bytes` in two, then byte by byte, then random cuts (seeded). */
function cuts(text) {
  const bytes = Buffer.from(text);
  const ways = [[bytes]];
  for (let at = 1; at < bytes.length; at += 1) ways.push([bytes.subarray(0, at), bytes.subarray(at)]);
  ways.push([...bytes].map((byte) => Buffer.from([byte])));
  let seed = 17;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (let round = 0; round < 200; round += 1) {
    const pieces = [];
    for (let at = 0; at < bytes.length; ) {
      const length = 1 + Math.floor(random() * 12);
      pieces.push(bytes.subarray(at, at + length));
      at += length;
    }
    ways.push(pieces);
  }
  return ways;
}

describe("ResponseParser", () => {
  test("a Content-Length body parses the same however the bytes are cut", () => {
    for (const pieces of cuts(CONTENT_LENGTH)) {
      const { response, extra } = parse(pieces);
      assert.equal(response.status, 200);
      assert.equal(response.headers["content-type"], "application/json");
      assert.equal(response.headers["content-length"], "14");
      assert.equal(response.body.toString("utf8"), JSON_BODY);
      assert.equal(response.keepAlive, true);
      assert.equal(extra, 0);
    }
  });

  test("a chunked body with extensions and trailers parses the same however the bytes are cut", () => {
    for (const pieces of cuts(CHUNKED)) {
      const { response, extra } = parse(pieces);
      assert.equal(response.status, 201);
      assert.equal(response.body.toString(), "hello 0123456789");
      assert.equal(response.headers["x-many"], "a, b");
      assert.equal(response.keepAlive, true);
      assert.equal(extra, 0);
    }
  });

  test("Connection: close, HTTP/1.0 and a close-delimited body make the socket single-use", () => {
    const closing = parse(["HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\ncontent-length: 2\r\n\r\nno"]);
    assert.equal(closing.response.status, 413);
    assert.equal(closing.response.keepAlive, false);

    assert.equal(parse(["HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"]).response.keepAlive, false);
    const kept = parse(["HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"]);
    assert.equal(kept.response.keepAlive, true);

    for (const pieces of cuts("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")) {
      const parser = new ResponseParser("POST");
      for (const piece of pieces) assert.equal(parser.push(piece), false);
      assert.equal(parser.finish(), true);
      assert.equal(parser.response.body.toString(), "until the end");
      assert.equal(parser.response.keepAlive, false);
    }
  });

  test("an interim 100 Continue is skipped; 204, 304 and HEAD responses have no body", () => {
    const parser = parse(["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"]);
    assert.equal(parser.response.status, 200);
    assert.equal(parser.response.body.toString(), "hi");
    assert.equal(parse(["HTTP/1.1 204 No Content\r\n\r\n"]).response.body.length, 0);
    assert.equal(parse(["HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"]).response.body.length, 0);
    assert.equal(parse(["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"], "HEAD").response.body.length, 0);
  });

  test("bytes after the response are counted, not taken as its body", () => {
    const parser = parse(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1"]);
    assert.equal(parser.response.body.toString(), "hi");
    assert.equal(parser.extra, "HTTP/1.1".length);
  });

  test("a response cut short is not complete at the end of the stream", () => {
    const bytes = Buffer.from(CHUNKED);
    for (let at = 0; at < bytes.length; at += 1) {
      const parser = new ResponseParser("POST");
      assert.equal(parser.push(bytes.subarray(0, at)), false);
      assert.equal(parser.finish(), false, `cut at ${at}`);
    }
  });

  test("malformed responses throw a ParseError", () => {
    const cases = [
      "SSH-2.0-OpenSSH_9.6\r\n\r\n",
      "HTTP/2 200\r\n\r\n",
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
      "HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiX\r\n",
    ];
    for (const text of cases) {
      assert.throws(() => new ResponseParser("POST").push(Buffer.from(text)), ParseError, text);
    }
    const endless = new ResponseParser("POST");
    assert.throws(() => endless.push(Buffer.alloc(70 * 1024, "a")), /over 65536 bytes/);
  });
});

/** A node:http server on a free loopback port; `handle(request, response, n)` gets the socket's request count. */
async function httpServer(handle) {
  const sockets = new Set();
  let connections = 0;
  const server = http.createServer((request, response) => {
    const socket = request.socket;
    socket.requests = (socket.requests ?? 0) + 1;
    let body = "";
    request.setEncoding("utf8");
    request.on("data", (chunk) => {
      body += chunk;
    });
    request.on("end", () => handle(request, response, socket.requests, body));
  });
  // The server never closes an idle socket itself: only the agent under test does.
  server.keepAliveTimeout = 0;
  server.on("connection", (socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    connections: () => connections,
    sockets,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A node:net server that calls `reply(socket, chunk)` with each connection's first bytes. */
async function rawServer(reply) {
  let connections = 0;
  const sockets = new Set();
  const server = net.createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.once("data", (chunk) => reply(socket, chunk));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    connections: () => connections,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

describe("Agent", () => {
  const agents = [];
  const servers = [];
  const agent = (options) => {
    const made = new Agent(options);
    agents.push(made);
    return made;
  };
  const served = async (made) => {
    servers.push(made);
    return made;
  };

  after(async () => {
    for (const made of agents) made.destroy();
    for (const server of servers) await server.close();
  });

  test("sends method, path, Host, the caller's headers, Content-Length and the body", async () => {
    const server = await served(
      await httpServer((request, response, _n, body) => {
        response.setHeader("Content-Type", "application/json");
        response.end(JSON.stringify({ method: request.method, url: request.url, headers: request.headers, body }));
      }),
    );
    const client = agent();
    const response = await client.post(`${server.url}/ipc/services:get-all?x=1`, {
      method: "POST",
      headers: { Authorization: "Bearer t", "Content-Type": "application/json" },
      body: JSON.stringify({ serviceName: "récords" }),
    });
    assert.equal(response.status, 200);
    assert.equal(response.ok, true);
    const seen = JSON.parse(await response.text());
    assert.equal(seen.method, "POST");
    assert.equal(seen.url, "/ipc/services:get-all?x=1");
    assert.equal(seen.headers.host, new URL(server.url).host);
    assert.equal(seen.headers.authorization, "Bearer t");
    assert.equal(seen.headers["content-type"], "application/json");
    assert.equal(seen.headers["content-length"], String(Buffer.byteLength('{"serviceName":"récords"}')));
    assert.equal(seen.body, '{"serviceName":"récords"}');

    const empty = JSON.parse(await (await client.post(`${server.url}/x`, { method: "POST" })).text());
    assert.equal(empty.headers["content-length"], "0");
    assert.equal(empty.headers["content-type"], undefined);
    assert.equal(server.connections(), 1, "the second request reused the kept-alive socket");
  });

  test("a header with CR or LF is refused before anything is sent", async () => {
    const client = agent();
    await assert.rejects(
      client.post("http://127.0.0.1:9/x", { method: "POST", headers: { Authorization: "a\r\nX-Evil: 1" } }),
      TypeError,
    );
    assert.deepEqual(client.sockets(), {});
  });

  test("chunked responses with trailers arrive whole", async () => {
    const server = await served(
      await httpServer((_request, response) => {
        response.setHeader("Trailer", "X-Checksum");
        response.write("first ");
        response.write("second ");
        response.addTrailers({ "X-Checksum": "abc" });
        response.end("third");
      }),
    );
    const response = await agent().post(`${server.url}/`, { method: "POST" });
    assert.equal(response.headers["transfer-encoding"], "chunked");
    assert.equal(await response.text(), "first second third");
  });

  test("a kept-alive socket the server closed unread is retried once on a new socket", async () => {
    // The second request on every socket is dropped unread, as a server closing an idle
    // connection does when the request crosses its FIN.
    const server = await served(
      await httpServer((request, response, n) => {
        if (n > 1) request.socket.destroy();
        else response.end(`served ${n}`);
      }),
    );
    const client = agent();
    assert.equal(await (await client.post(`${server.url}/`, { method: "POST" })).text(), "served 1");
    assert.equal(await (await client.post(`${server.url}/`, { method: "POST" })).text(), "served 1");
    assert.equal(server.connections(), 2);
  });

  test("a request after the server closed its idle sockets succeeds", async () => {
    const server = await served(await httpServer((_request, response) => response.end("ok")));
    const client = agent();
    for (let round = 0; round < 20; round += 1) {
      await client.post(`${server.url}/`, { method: "POST" });
      for (const socket of server.sockets) socket.destroy();
      await waitUntil("the server's sockets to close", () => server.sockets.size === 0);
      // Whether or not the client has seen the FIN yet, the request gets through.
      assert.equal(await (await client.post(`${server.url}/`, { method: "POST" })).text(), "ok");
    }
  });

  test("a fresh socket closed before any response rejects, without a retry", async () => {
    const server = await served(await rawServer((socket) => socket.destroy()));
    const client = agent();
    const error = await client.post(`${server.url}/`, { method: "POST" }).catch((e) => e);
    assert.ok(error instanceof Error, String(error));
    assert.match(error.code, /ECONNRESET|EPIPE/);
    assert.equal(server.connections(), 1);
    assert.deepEqual(client.sockets(), {});
  });

  test("the retry is made once: a second failure rejects", async () => {
    const server = await served(
      await httpServer((request, response, n) => {
        if (request.url === "/drop" || n > 1) request.socket.destroy();
        else response.end("ok");
      }),
    );
    const client = agent();
    await client.post(`${server.url}/`, { method: "POST" });
    const error = await client.post(`${server.url}/drop`, { method: "POST" }).catch((e) => e);
    assert.equal(error.code, "ECONNRESET");
    assert.equal(server.connections(), 2, "the reused socket, then one new socket");
  });

  test("a connection closed in the middle of a response rejects and is not retried", async () => {
    const cases = [
      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
      "HTTP/1.1 200 OK\r\nContent-Le",
    ];
    for (const text of cases) {
      const server = await served(await rawServer((socket) => socket.end(text)));
      const client = agent();
      const error = await client.post(`${server.url}/`, { method: "POST" }).catch((e) => e);
      assert.ok(error instanceof Error, text);
      assert.match(error.message, /closed in the middle of the response/);
      assert.equal(server.connections(), 1);
      assert.deepEqual(client.sockets(), {});
    }
  });

  test("a malformed response rejects with a ParseError and closes the socket", async () => {
    const server = await served(await rawServer((socket) => socket.write("HTTP/1.1 OK\r\n\r\n")));
    const client = agent();
    await assert.rejects(client.post(`${server.url}/`, { method: "POST" }), ParseError);
    assert.deepEqual(client.sockets(), {});
  });

  test("a close-delimited body ends with the connection", async () => {
    const server = await served(
      await rawServer((socket) => socket.end("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")),
    );
    const response = await agent().post(`${server.url}/`, { method: "POST" });
    assert.equal(await response.text(), "all of it");
  });

  test("Connection: close from the server is honoured: the next request opens a new socket", async () => {
    const server = await served(
      await httpServer((_request, response) => {
        response.setHeader("Connection", "close");
        response.statusCode = 413;
        response.end('{"error":"too large"}');
      }),
    );
    const client = agent();
    const first = await client.post(`${server.url}/`, { method: "POST" });
    assert.equal(first.status, 413);
    assert.equal(first.ok, false);
    assert.deepEqual(client.sockets(), {});
    await client.post(`${server.url}/`, { method: "POST" });
    assert.equal(server.connections(), 2);
  });

  test("a body over 64 KiB is sent with Expect: 100-continue once the server says so", async () => {
    const server = await served(
      await httpServer((request, response, _n, body) => {
        response.end(JSON.stringify({ expect: request.headers.expect, length: body.length }));
      }),
    );
    const client = agent();
    const body = "y".repeat(300 * 1024);
    const response = await client.post(`${server.url}/`, { method: "POST", body });
    assert.deepEqual(JSON.parse(await response.text()), { expect: "100-continue", length: body.length });
    const small = await client.post(`${server.url}/`, { method: "POST", body: "{}" });
    assert.deepEqual(JSON.parse(await small.text()), { length: 2 });
    assert.equal(server.connections(), 1, "the socket is kept after a body sent on 100 Continue");
  });

  /**
   * A rawServer `reply` that reads each request's head, then calls `then(socket, head)`;
   * `received.bytes` counts all bytes received, `received.last` those of the last connection.
   */
  const headReader = (then) => {
    const received = { bytes: 0, last: 0 };
    return {
      received,
      reply: (socket, first) => {
        let head = "";
        received.last = 0;
        const read = (chunk) => {
          received.bytes += chunk.length;
          received.last += chunk.length;
          if (head.endsWith("\r\n\r\n")) return;
          head += chunk.toString("latin1");
          const end = head.indexOf("\r\n\r\n");
          if (end !== -1) {
            head = head.slice(0, end + 4);
            then(socket, head);
          }
        };
        socket.on("data", read);
        read(first);
      },
    };
  };

  test("a large body refused before the go-ahead is never sent, and the refusal is read", async () => {
    const reader = headReader((socket) =>
      socket.end("HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 8\r\n\r\ntoo much"),
    );
    const server = await served(await rawServer(reader.reply));
    const client = agent();
    for (const size of [100 * 1024, 8 * 1024 * 1024]) {
      const response = await client.post(`${server.url}/`, { method: "POST", body: "z".repeat(size) });
      assert.equal(response.status, 413);
      assert.equal(await response.text(), "too much");
    }
    assert.ok(reader.received.bytes < 2048, `the server got ${reader.received.bytes} bytes, only heads`);
    assert.deepEqual(client.sockets(), {});
  });

  test("a large body is sent after a wait when the server sends no 100 Continue", async () => {
    const size = 80 * 1024;
    const reader = headReader((socket, head) => {
      assert.match(head, /Expect: 100-continue/);
      const answer = () => {
        if (reader.received.last < head.length + size) return;
        socket.off("data", answer);
        socket.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      };
      socket.on("data", answer);
      answer();
    });
    const server = await served(await rawServer(reader.reply));
    const response = await agent().post(`${server.url}/`, { method: "POST", body: "w".repeat(size) });
    assert.equal(await response.text(), "ok");
  });

  test("a refused connection rejects with ECONNREFUSED", async () => {
    const server = await rawServer(() => {});
    const { url } = server;
    await server.close();
    const error = await agent().post(`${url}/`, { method: "POST" }).catch((e) => e);
    assert.equal(error.code, "ECONNREFUSED");
  });

  test("parallel requests each get a socket; at most maxIdle stay open, the newest reused first", async () => {
    const server = await served(
      await httpServer((request, response) => {
        response.end(`${request.socket.remotePort}`);
      }),
    );
    const client = agent({ maxIdle: 4 });
    const url = `${server.url}/`;
    const ports = await Promise.all(
      Array.from({ length: 10 }, () => client.post(url, { method: "POST" }).then((r) => r.text())),
    );
    assert.equal(new Set(ports).size, 10, "ten requests at once, ten sockets");
    assert.deepEqual(client.sockets(), { [new URL(url).host]: { idle: 4, busy: 0 } });
    await waitUntil("the server to see the surplus sockets close", () => server.sockets.size === 4);
    const first = await (await client.post(url, { method: "POST" })).text();
    const second = await (await client.post(url, { method: "POST" })).text();
    assert.equal(first, second, "one request at a time reuses one socket");
  });

  test("beyond maxSockets requests wait for a free socket, and all are answered", async () => {
    let open = 0;
    let most = 0;
    let sockets;
    const server = await served(
      await httpServer((request, response) => {
        sockets();
        // Every third answer closes its socket: a waiting request then takes a new one.
        if (request.url.endsWith("/close")) response.setHeader("Connection", "close");
        response.end(request.url);
      }),
    );
    const client = agent({ maxSockets: 4 });
    sockets = () => {
      const counts = Object.values(client.sockets())[0] ?? { busy: 0, idle: 0 };
      most = Math.max(most, counts.busy);
      open = counts.busy + counts.idle;
      return counts;
    };
    const paths = Array.from({ length: 40 }, (_, i) => `/${i}${i % 3 === 0 ? "/close" : ""}`);
    const answers = [];
    const requests = paths.map((path) =>
      client.post(`${server.url}${path}`, { method: "POST" }).then(async (response) => {
        sockets();
        answers.push(await response.text());
      }),
    );
    sockets();
    await Promise.all(requests);
    assert.deepEqual(answers.sort(), [...paths].sort());
    assert.ok(most <= 4, `${most} sockets were busy at once`);
    assert.ok(server.connections() > 4, "the sockets closed by the server were replaced");
    assert.ok(open <= 4);
  });

  test("idle sockets are closed after idleTimeoutMs", async () => {
    const server = await served(await httpServer((_request, response) => response.end("ok")));
    const client = agent({ idleTimeoutMs: 50 });
    await Promise.all([1, 2, 3].map(() => client.post(`${server.url}/`, { method: "POST" })));
    assert.equal(server.sockets.size, 3);
    await waitUntil("the idle sockets to be closed", () => server.sockets.size === 0);
    assert.deepEqual(client.sockets(), {});
  });

  test("an idle socket does not keep the process alive", async () => {
    const server = await served(await httpServer((_request, response) => response.end("ok")));
    const script = `
      import { post } from ${JSON.stringify(new URL("../src/node.js", import.meta.url).href)};
      const response = await post(${JSON.stringify(`${server.url}/`)}, { method: "POST" });
      console.log(await response.text());
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
    });
    let exited = false;
    child.on("exit", () => {
      exited = true;
    });
    try {
      await waitUntil("the child to exit with its socket still idle", () => exited);
    } finally {
      child.kill("SIGKILL");
    }
    assert.equal(output.trim(), "ok");
    assert.equal(child.exitCode, 0);
  });
});
