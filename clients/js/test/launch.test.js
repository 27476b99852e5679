// `launch()` against the real conductor: it resolves with a connected client on a good
// registry (and on a degraded start), and rejects with conductor's own error text and exit
// code when startup fails (2, naming the service) or the data dir is in use (3, naming the
// holder), or when the binary cannot be started at all.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterEach, test } from "node:test";

import { LaunchError, launch } from "../src/launch.js";
import { CONDUCTOR_BIN, freePorts, sandbox, writeRegistry } from "./helpers.js";

const boxes = [];
const clients = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const box of boxes.splice(0)) await box.cleanup();
});

function newSandbox(name) {
  const box = sandbox(name);
  boxes.push(box);
  return box;
}

async function start(box, registry, extra = {}) {
  const client = await launch({
    binary: CONDUCTOR_BIN,
    registry,
    dataDir: box.dataDir,
    env: box.env,
    ...extra,
  });
  clients.push(client);
  return client;
}

test("a good registry: resolves once every service is ready, with a connected client", async () => {
  const box = newSandbox("launch-good");
  const [records, export_] = await freePorts(2);
  const registry = writeRegistry(box.dir, box.tag, [
    { name: "records", port: records },
    { name: "export", port: export_ },
  ]);
  const lines = [];
  const client = await start(box, registry, { onLine: (line, stream) => lines.push([stream, line]) });

  assert.ok(
    lines.some(([stream, line]) => stream === "stdout" && line === "✓ All services ready"),
    JSON.stringify(lines),
  );
  assert.ok(existsSync(join(box.dataDir, "ipc.json")));
  const services = await client.invoke("services:get-all");
  assert.deepEqual(
    services.map((s) => s.status),
    ["running", "running"],
  );
  await client.quit();
  assert.equal(client.child.exitCode, 0);
  assert.ok(!existsSync(join(box.dataDir, "ipc.json")), "ipc.json is removed on exit");
});

test("a degraded start (a non-critical service failed) still resolves", async () => {
  const box = newSandbox("launch-degraded");
  const [records, analysis] = await freePorts(2);
  const registry = writeRegistry(box.dir, box.tag, [
    { name: "records", port: records },
    { name: "analysis", port: analysis, critical: false, command: join(box.dir, "missing") },
  ]);
  const lines = [];
  const client = await start(box, registry, { onLine: (line) => lines.push(line) });
  assert.ok(lines.includes("! Running degraded without: analysis"), lines.join("\n"));
  assert.deepEqual(await client.invoke("app:health"), { status: "degraded", failing: ["analysis"] });
  await client.quit();
});

test("a critical service that cannot start: rejects with exit code 2 naming it", async () => {
  const box = newSandbox("launch-bad");
  const [records, export_] = await freePorts(2);
  const registry = writeRegistry(box.dir, box.tag, [
    { name: "records", port: records },
    { name: "export", port: export_, command: join(box.dir, "no-such-program") },
  ]);
  const error = await start(box, registry).then(
    () => assert.fail("launch resolved"),
    (e) => e,
  );
  assert.ok(error instanceof LaunchError, error);
  assert.equal(error.exitCode, 2);
  assert.match(error.message, /export/);
  assert.match(error.message, /no-such-program/);
  assert.equal(error.message, error.stderr.trim(), "the message is conductor's own report");
});

test("a data dir in use: rejects with exit code 3 naming the holder", async () => {
  const box = newSandbox("launch-busy");
  const [records] = await freePorts(1);
  const registry = writeRegistry(box.dir, box.tag, [{ name: "records", port: records }]);
  const holder = await start(box, registry);

  const error = await start(box, registry).then(
    () => assert.fail("a second launch resolved"),
    (e) => e,
  );
  assert.ok(error instanceof LaunchError, error);
  assert.equal(error.exitCode, 3);
  assert.match(error.message, new RegExp(`\\b${holder.child.pid}\\b`));
  assert.equal((await holder.invoke("services:get-all"))[0].status, "running", "the holder is untouched");
  await holder.quit();
});

test("a binary that does not exist: rejects with the spawn error", async () => {
  const box = newSandbox("launch-nobinary");
  const error = await launch({ binary: join(box.dir, "conductor"), dataDir: box.dataDir }).then(
    () => assert.fail("launch resolved"),
    (e) => e,
  );
  assert.ok(error instanceof LaunchError, error);
  assert.equal(error.cause?.code, "ENOENT");
});
