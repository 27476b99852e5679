// `launch` passes `--exit-with-parent`: the Node process that launched conductor is SIGKILLed
// and conductor, every service and the services' descendants (one outside its process group,
// via setsid) are gone soon after. Every process carries the test's TEST_TAG in its
// environment; /proc tells which are left.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";

import { isAlive } from "../src/node.js";
import {
  CONDUCTOR_BIN,
  FAKE_SERVICE_BIN,
  freePorts,
  sandbox,
  tagged,
  waitUntil,
  writeRegistry,
} from "./helpers.js";

const box = sandbox("exit-with-parent");
after(() => box.cleanup());

test("a SIGKILLed parent takes conductor, its services and their descendants with it", async () => {
  const [plain, loner] = await freePorts(2);
  const registry = writeRegistry(box.dir, box.tag, [
    { name: "plain", port: plain },
    {
      name: "loner",
      port: loner,
      command: "/bin/sh",
      args: ["-c", 'setsid sleep 1000 & exec "$0"', FAKE_SERVICE_BIN],
    },
  ]);
  const script = fileURLToPath(new URL("./fixtures/parent.js", import.meta.url));
  const parent = spawn(process.execPath, [script, CONDUCTOR_BIN, registry, box.dataDir], {
    env: box.env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: parent.stdout });
  const ready = await new Promise((resolve, reject) => {
    lines.once("line", resolve);
    parent.once("exit", (code) => reject(new Error(`the parent exited with ${code}`)));
  });
  const conductor = Number(ready.split(" ")[1]);
  // parent, conductor, plain, loner's fake-service and the setsid sleeper.
  await waitUntil("the whole tree to be tagged", () => tagged(box.tag).length >= 5);
  assert.ok(tagged(box.tag).includes(conductor));

  parent.kill("SIGKILL");

  await waitUntil(
    "conductor and every process of its fleet to be gone after its parent was killed",
    () => tagged(box.tag).length === 0,
    5_000,
  ).catch((error) => {
    error.message += `; still alive: ${tagged(box.tag)}`;
    throw error;
  });
  assert.equal(isAlive(conductor), false);
  assert.ok(!existsSync(join(box.dataDir, "ipc.json")), "a graceful stop removes ipc.json");
});
