// The generated wire types cover the protocol: every channel of SPEC §5 and our extensions is
// in the ChannelName union and in both channel tables, every event in EventName, and the
// records carry the SPEC's field names. (That they match crates/protocol exactly is
// `cargo xtask ts-types --check`; the channel list is also checked against the live server
// in invoke.test.js.)

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { CHANNELS, EVENTS } from "../src/index.js";
import { SERVICE_STATUS_FIELDS } from "./helpers.js";

const dts = readFileSync(new URL("../src/protocol.d.ts", import.meta.url), "utf8");

const SPEC_CHANNELS = [
  "services:get-all",
  "services:start",
  "services:stop",
  "services:restart",
  "database:init",
  "database:status",
  "logs:get",
  "logs:clear",
  "app:get-path",
  "app:quit",
  "app:health",
  "metrics:get",
  "app:reload",
];

function block(name) {
  const start = dts.indexOf(`export ${name}`);
  assert.ok(start >= 0, `protocol.d.ts declares ${name}`);
  return dts.slice(start, dts.indexOf(";\n\n", start));
}

function unionMembers(name) {
  return [...block(`type ${name} =`).matchAll(/\| "([^"]+)"/g)].map((m) => m[1]);
}

test("the channel-name union has every channel, and the runtime list matches it", () => {
  assert.deepEqual(unionMembers("ChannelName"), SPEC_CHANNELS);
  assert.deepEqual([...CHANNELS], SPEC_CHANNELS);
});

test("both channel tables have a row for every channel", () => {
  for (const table of ["interface ChannelRequests", "interface ChannelResponses"]) {
    const start = dts.indexOf(`export ${table}`);
    const body = dts.slice(start, dts.indexOf("\n}", start));
    const keys = [...body.matchAll(/^ {2}"([^"]+)":/gm)].map((m) => m[1]);
    assert.deepEqual(keys, SPEC_CHANNELS, table);
  }
});

test("the event-name union has the SPEC's events and the runtime list matches it", () => {
  const names = unionMembers("EventName");
  for (const name of [
    "service:status-changed",
    "service:error",
    "database:initialized",
    "app:health-changed",
    "resync",
  ]) {
    assert.ok(names.includes(name), name);
  }
  assert.deepEqual([...EVENTS], names);
});

test("ServiceStatus and LogEntry have the SPEC's camelCase fields", () => {
  const fields = (name) =>
    [...block(`type ${name} =`).matchAll(/^(\w+)\??:/gm)].map((m) => m[1]).sort();
  assert.deepEqual(fields("ServiceStatus"), SERVICE_STATUS_FIELDS);
  assert.deepEqual(fields("LogEntry"), ["level", "message", "service", "timestamp"]);
});
