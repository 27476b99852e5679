// `client.on`: the shared event stream against the real conductor. A SIGKILLed service is seen
// leaving `running` and coming back; a conductor that quits and starts again on the same data
// dir (new port, new token, new event ids) is reconnected to, with a `resync`, and events flow
// again; the last unsubscribe closes the stream and the next subscription opens one.

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { EVENTS, connect } from "../src/index.js";
import { launch } from "../src/launch.js";
import { CONDUCTOR_BIN, freePorts, Recorder, sandbox, waitUntil, writeRegistry } from "./helpers.js";

const boxes = [];
const clients = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const box of boxes.splice(0)) await box.cleanup();
});

async function fleet(name) {
  const box = sandbox(name);
  boxes.push(box);
  const [records, analysis] = await freePorts(2);
  const registry = writeRegistry(box.dir, box.tag, [
    { name: "records", port: records },
    { name: "analysis", port: analysis, critical: false },
  ]);
  const start = () =>
    launch({ binary: CONDUCTOR_BIN, registry, dataDir: box.dataDir, env: box.env }).then(
      (client) => {
        clients.push(client);
        return client;
      },
    );
  return { box, start };
}

/** A `{ dataDir }` client whose stream opens are counted; resolves once it is listening. */
async function listen(box, recorder, events) {
  let opens = 0;
  const client = await connect({
    dataDir: box.dataDir,
    backoff: { initial: 20, max: 200 },
    onStreamOpen: () => {
      opens += 1;
    },
  });
  clients.push(client);
  const unsubscribe = events.map((event) => client.on(event, recorder.listener(event)));
  await waitUntil("the event stream to open", () => opens > 0);
  return { client, unsubscribe, opens: () => opens };
}

test("a SIGKILLed service is seen leaving running and coming back", async () => {
  const { box, start } = await fleet("sigkill");
  const conductor = await start();
  const recorder = new Recorder();
  // Every event, so that the ids seen are consecutive.
  await listen(box, recorder, EVENTS);
  const records = (await conductor.invoke("services:get-all")).find((s) => s.name === "records");

  process.kill(records.pid, "SIGKILL");

  const left = await recorder.waitFor(
    "records to leave running",
    (e) =>
      e.event === "service:status-changed" &&
      e.payload.serviceName === "records" &&
      e.payload.status.status !== "running",
  );
  const back = await recorder.waitFor(
    "records to be running again",
    (e) =>
      e.event === "service:status-changed" &&
      e.payload.serviceName === "records" &&
      e.payload.status.status === "running",
    recorder.events.indexOf(left),
  );
  assert.notEqual(back.payload.status.pid, records.pid);
  assert.equal(back.payload.status.name, "records");
  await recorder.waitFor(
    "a service:error about records",
    (e) => e.event === "service:error" && e.payload.serviceName === "records",
  );
  // `logs:entry` is live only and carries no id of its own (a listener sees the last one).
  const ids = recorder.events.filter((e) => e.event !== "logs:entry").map((e) => BigInt(e.id));
  for (let i = 1; i < ids.length; i += 1) assert.equal(ids[i], ids[i - 1] + 1n, `ids ${ids}`);
});

test("after conductor quits and starts again, the stream reconnects and resyncs", async () => {
  const { box, start } = await fleet("restart");
  const first = await start();
  const recorder = new Recorder();
  const listener = await listen(box, recorder, ["service:status-changed", "resync"]);
  const isRunning = (e) =>
    e.event === "service:status-changed" &&
    e.payload.serviceName === "analysis" &&
    e.payload.status.status === "running";

  await first.invoke("services:restart", { serviceName: "analysis" });
  const beforeQuit = await recorder.waitFor("analysis running again (first run)", isRunning);
  await first.quit();
  const mark = recorder.events.length;

  const second = await start();
  assert.notEqual(second.token, first.token);
  const resync = await recorder.waitFor("resync from the new run", (e) => e.event === "resync", mark);
  assert.equal(typeof resync.payload.oldestAvailable, "number");
  assert.notEqual(BigInt(resync.id), BigInt(beforeQuit.id) + 1n, "a new run numbers anew");
  assert.ok(listener.opens() >= 2, `opens: ${listener.opens()}`);

  const afterResync = recorder.events.indexOf(resync);
  await second.invoke("services:restart", { serviceName: "analysis" });
  const again = await recorder.waitFor("analysis running again (second run)", isRunning, afterResync);
  assert.ok(BigInt(again.id) > BigInt(resync.id), `${again.id} follows ${resync.id}`);
  assert.equal(listener.client.url, second.url, "the listener follows ipc.json to the new run");
});

test("one stream is shared, closed by the last unsubscribe and reopened by the next on", async () => {
  const { box, start } = await fleet("shared");
  const conductor = await start();
  const recorder = new Recorder();
  const listener = await listen(box, recorder, ["service:status-changed", "app:health-changed"]);
  assert.equal(listener.opens(), 1, "two events, one stream");

  for (const unsubscribe of listener.unsubscribe) unsubscribe();
  await conductor.invoke("services:restart", { serviceName: "analysis" });
  const seen = recorder.events.length;
  const off = new Recorder();
  const unsubscribe = listener.client.on("service:status-changed", off.listener("service:status-changed"));
  await waitUntil("the stream to open again", () => listener.opens() === 2);
  await conductor.invoke("services:restart", { serviceName: "analysis" });
  await off.waitFor("the new listener's events", (e) => e.payload.status.status === "running");
  assert.equal(recorder.events.length, seen, "unsubscribed listeners hear nothing");
  unsubscribe();
});
