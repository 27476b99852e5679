// The event-stream parser and the backoff on their own: chunk boundaries anywhere (inside a
// line, between `\r` and `\n`), comments, multi-line data, ids carried over.

import assert from "node:assert/strict";
import { test } from "node:test";

import { SseParser, backoffDelay, errorText } from "../src/sse.js";

function parse(chunks) {
  const events = [];
  const parser = new SseParser((event) => events.push(event));
  for (const chunk of chunks) parser.push(chunk);
  return events;
}

const STREAM =
  ": keep-alive\n\nid: 7\nevent: service:error\ndata: {\"a\":1}\n\n" +
  "id: 8\r\nevent: resync\r\ndata: {\"oldestAvailable\":3}\r\n\r\n" +
  "data: one\ndata: two\n\n";

const EXPECTED = [
  { id: "7", event: "service:error", data: '{"a":1}' },
  { id: "8", event: "resync", data: '{"oldestAvailable":3}' },
  // No `id:` of its own: the last one seen stays (the SSE rule behind Last-Event-ID).
  { id: "8", event: "message", data: "one\ntwo" },
];

test("a whole stream parses into its events", () => {
  assert.deepEqual(parse([STREAM]), EXPECTED);
});

test("every split of the stream into two chunks parses the same", () => {
  for (let at = 0; at <= STREAM.length; at += 1) {
    assert.deepEqual(parse([STREAM.slice(0, at), STREAM.slice(at)]), EXPECTED, `split at ${at}`);
  }
});

test("one byte at a time parses the same", () => {
  assert.deepEqual(parse([...STREAM]), EXPECTED);
});

test("an event without its blank line is not dispatched yet", () => {
  assert.deepEqual(parse(["id: 1\nevent: x\ndata: y\n"]), []);
});

test("backoff doubles up to its maximum", () => {
  const delays = [0, 1, 2, 3, 10, 40].map((n) => backoffDelay(n, { initial: 100, max: 1000 }));
  assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000]);
});

test("errorText takes conductor's message out of an error body", () => {
  assert.equal(errorText('{"error":"unknown service \\"x\\""}'), 'unknown service "x"');
  assert.equal(errorText("Bad Gateway"), "Bad Gateway");
});
