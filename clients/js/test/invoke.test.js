// Every channel of SPEC §5 through `invoke`, against the real conductor and a fake-service
// fleet, with the SPEC's field names; and the errors: unknown service (400), wrong token
// (401), unknown channel (404), each a ConductorError with status and conductor's message.

import assert from "node:assert/strict";
import { realpathSync } from "node:fs";
import { after, before, describe, test } from "node:test";

import { CHANNELS, ConductorError, connect } from "../src/index.js";
import { launch } from "../src/launch.js";
import {
  CONDUCTOR_BIN,
  SERVICE_STATUS_FIELDS,
  freePorts,
  sandbox,
  tagged,
  waitUntil,
  writeRegistry,
} from "./helpers.js";

describe("invoke", () => {
  const box = sandbox("invoke");
  let client;

  before(async () => {
    const [records, analysis] = await freePorts(2);
    const registry = writeRegistry(box.dir, box.tag, [
      { name: "records", port: records },
      { name: "analysis", port: analysis, critical: false },
    ]);
    client = await launch({ binary: CONDUCTOR_BIN, registry, dataDir: box.dataDir, env: box.env });
  });

  after(async () => {
    client?.close();
    await box.cleanup();
  });

  test("services:get-all lists every service with the SPEC's fields", async () => {
    const services = await client.invoke("services:get-all");
    assert.deepEqual(
      services.map((s) => [s.name, s.status, s.critical]),
      [
        ["records", "running", true],
        ["analysis", "running", false],
      ],
    );
    for (const service of services) {
      assert.deepEqual(Object.keys(service).sort(), SERVICE_STATUS_FIELDS);
      assert.equal(typeof service.pid, "number");
    }
  });

  test("services:stop, start and restart act on one service", async () => {
    const status = async () =>
      (await client.invoke("services:get-all")).find((s) => s.name === "analysis");
    const before = await status();

    assert.deepEqual(await client.invoke("services:stop", { serviceName: "analysis" }), {
      success: true,
    });
    assert.equal((await status()).status, "stopped");
    assert.deepEqual(await client.invoke("services:start", { serviceName: "analysis" }), {
      success: true,
    });
    const started = await status();
    assert.equal(started.status, "running");
    assert.notEqual(started.pid, before.pid);
    assert.deepEqual(await client.invoke("services:restart", { serviceName: "analysis" }), {
      success: true,
    });
    const restarted = await status();
    assert.equal(restarted.status, "running");
    assert.notEqual(restarted.pid, started.pid);
  });

  test("database:init and database:status", async () => {
    const init = await client.invoke("database:init");
    assert.deepEqual(init, { success: true, migrationsRun: 0 });
    const status = await client.invoke("database:status");
    assert.equal(status.initialized, true);
    assert.equal(typeof status.version, "number");
    assert.match(status.path, /\.db$/);
  });

  test("logs:get with and without arguments, then logs:clear", async () => {
    const all = await client.invoke("logs:get");
    assert.ok(all.logs.length > 0, "the services printed their listening line");
    for (const entry of all.logs) {
      assert.deepEqual(Object.keys(entry).sort(), ["level", "message", "service", "timestamp"]);
    }
    const one = await client.invoke("logs:get", { serviceName: "records", lines: 1 });
    assert.equal(one.logs.length, 1);
    assert.equal(one.logs[0].service, "records");

    assert.deepEqual(await client.invoke("logs:clear"), { success: true });
    const cleared = await client.invoke("logs:get", { serviceName: "records" });
    assert.deepEqual(cleared.logs, []);
  });

  test("app:get-path names the data dir and its logs", async () => {
    const { path } = await client.invoke("app:get-path", { pathName: "userData" });
    assert.equal(realpathSync(path), realpathSync(box.dataDir));
    const logs = await client.invoke("app:get-path", { pathName: "logs" });
    assert.ok(logs.path.startsWith(path), `${logs.path} is inside ${path}`);
    const temp = await client.invoke("app:get-path", { pathName: "temp" });
    assert.equal(typeof temp.path, "string");
  });

  test("app:health, metrics:get and app:reload (our extensions)", async () => {
    assert.deepEqual(await client.invoke("app:health"), { status: "healthy", failing: [] });

    const metrics = await client.invoke("metrics:get", { serviceName: "records" });
    assert.deepEqual(
      metrics.services.map((s) => s.serviceName),
      ["records"],
    );
    assert.ok(Array.isArray(metrics.conductor));

    const reload = await client.invoke("app:reload");
    assert.deepEqual(reload, {
      success: true,
      added: [],
      removed: [],
      changed: [],
      unchanged: ["records", "analysis"],
    });
  });

  test("an unknown service rejects with 400 and conductor's message", async () => {
    const error = await client
      .invoke("services:start", { serviceName: "citaton" })
      .then(() => assert.fail("resolved"), (e) => e);
    assert.ok(error instanceof ConductorError, error);
    assert.equal(error.status, 400);
    assert.equal(error.channel, "services:start");
    assert.match(error.message, /citaton/);
  });

  test("a malformed payload rejects with 400", async () => {
    const error = await client.invoke("app:get-path", { pathName: "home" }).catch((e) => e);
    assert.equal(error.status, 400);
    assert.match(error.message, /home/);
  });

  test("a wrong token rejects with 401", async () => {
    const stranger = await connect({ url: client.url, token: "not-the-token" });
    const error = await stranger.invoke("services:get-all").catch((e) => e);
    assert.ok(error instanceof ConductorError, error);
    assert.equal(error.status, 401);
    assert.ok(error.message.length > 0);
  });

  test("an unknown channel rejects with 404, listing exactly the generated channel names", async () => {
    const error = await client.invoke("services:list").catch((e) => e);
    assert.equal(error.status, 404);
    const known = error.message.match(/known channels: ([^;]*)/);
    assert.ok(known, error.message);
    assert.deepEqual(known[1].split(", "), [...CHANNELS]);
  });

  test("connect({ dataDir }) reads ipc.json and reaches the same instance", async () => {
    const byDir = await connect({ dataDir: box.dataDir });
    assert.equal(byDir.url, client.url);
    assert.equal(byDir.pid, client.child.pid);
    assert.equal((await byDir.invoke("services:get-all")).length, 2);
  });

  test("50 invokes at once each get their own answer, over sockets the pool then keeps", async () => {
    const calls = [
      ["app:get-path", { pathName: "userData" }],
      ["app:get-path", { pathName: "logs" }],
      ["app:get-path", { pathName: "temp" }],
      ["services:get-all", undefined],
      ["app:health", undefined],
    ];
    const expected = [];
    for (const [channel, payload] of calls) {
      const answer = await client.invoke(channel, payload);
      // Everything but the moving parts (uptime, CPU, memory) of a service's status.
      expected.push(channel === "services:get-all" ? answer.map((s) => [s.name, s.pid]) : answer);
    }
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => client.invoke(...calls[i % calls.length])),
    );
    answers.forEach((answer, i) => {
      const shape = calls[i % calls.length][0] === "services:get-all" ? answer.map((s) => [s.name, s.pid]) : answer;
      assert.deepEqual(shape, expected[i % calls.length], `invoke ${i}: ${calls[i % calls.length][0]}`);
    });
    const { agent } = await import("../src/node.js");
    const sockets = agent.sockets()[new URL(client.url).host];
    assert.equal(sockets.busy, 0);
    assert.ok(sockets.idle > 1 && sockets.idle <= 16, `idle sockets: ${sockets.idle}`);
  });

  test("400 invokes at once all succeed: past 64 busy sockets they wait, under conductor's 256", async () => {
    const answers = await Promise.all(Array.from({ length: 400 }, () => client.invoke("app:health")));
    for (const answer of answers) assert.deepEqual(answer, { status: "healthy", failing: [] });
  });

  test("a body over 64 KiB rejects with 413 (Connection: close), and the next invoke succeeds", async () => {
    // Megabytes too: conductor refuses before the body is sent (our Expect: 100-continue), so
    // its close is no reset that would lose the 413 (nodejs/node#12339).
    for (const size of [70 * 1024, 70 * 1024, 2 * 1024 * 1024, 2 * 1024 * 1024, 2 * 1024 * 1024]) {
      const error = await client.invoke("app:reload", { registry: "x".repeat(size) }).catch((e) => e);
      assert.ok(error instanceof ConductorError, error);
      assert.equal(error.status, 413, error.message);
      assert.match(error.message, /64 KiB/);
      assert.deepEqual(await client.invoke("app:health"), { status: "healthy", failing: [] });
    }
  });

  // Last: app:quit ends the fleet that the tests above share.
  test("quit() invokes app:quit and resolves once conductor has exited", async () => {
    const pid = client.child.pid;
    await client.quit();
    assert.ok(client.child.exitCode === 0, `exit code ${client.child.exitCode}`);
    assert.throws(() => process.kill(pid, 0), { code: "ESRCH" });
    await waitUntil("every process of the fleet to be gone", () => tagged(box.tag).length === 0);
  });

  test("once conductor has exited, invoke rejects with status 0 (its kept sockets are gone)", async () => {
    const error = await client.invoke("services:get-all").catch((e) => e);
    assert.ok(error instanceof ConductorError, error);
    assert.equal(error.status, 0);
    assert.equal(error.channel, "services:get-all");
    assert.match(error.message, /not reachable/);
  });
});

describe("invoke across a conductor restart", () => {
  const box = sandbox("invoke-restart");
  const launched = [];

  after(async () => {
    for (const client of launched) client.close();
    await box.cleanup();
  });

  test("a { dataDir } client with kept-alive sockets follows conductor to its new address and token", async () => {
    const [records] = await freePorts(1);
    const registry = writeRegistry(box.dir, box.tag, [{ name: "records", port: records }]);
    const start = async () => {
      const client = await launch({ binary: CONDUCTOR_BIN, registry, dataDir: box.dataDir, env: box.env });
      launched.push(client);
      return client;
    };
    const first = await start();
    const byDir = await connect({ dataDir: box.dataDir });
    // Several sockets kept alive to the first run.
    await Promise.all(Array.from({ length: 4 }, () => byDir.invoke("services:get-all")));
    await first.quit();

    const second = await start();
    assert.notEqual(second.token, first.token, "a new run has a new token");
    const services = await byDir.invoke("services:get-all");
    assert.deepEqual(
      services.map((s) => [s.name, s.status]),
      [["records", "running"]],
    );
    assert.equal(byDir.url, second.url);
    assert.equal(byDir.token, second.token);
    await second.quit();
  });
});
