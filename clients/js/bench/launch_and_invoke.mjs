// The JS client's figures for `cargo xtask bench` (issue 17): how long `launch()` takes to a
// connected client, beside how long `conductor up` itself takes to print "All services ready"
// (both measured here, the same way, on the same registry), and the round trip of
// `invoke('services:get-all')` on loopback. Prints one JSON object; the bench reads it.
//
// usage: node launch_and_invoke.mjs <conductor> <registry> <data dir> <runs> <invokes>

import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { createInterface } from "node:readline";

import { launch } from "../src/launch.js";

const [binary, registry, dataDir, runs, invokes] = process.argv.slice(2);

/** `conductor up` alone: spawn → its "All services ready" line; then quit it. */
async function upAlone() {
  const started = performance.now();
  const child = spawn(binary, ["up", "--registry", registry, "--data-dir", dataDir], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  for await (const line of lines) {
    if (line.startsWith("✓ All services ready") || line.startsWith("! Running degraded")) break;
  }
  const elapsed = performance.now() - started;
  child.kill("SIGTERM");
  await exited;
  return elapsed;
}

/** `launch()`: call → a connected client; then quit through it. */
async function viaLaunch() {
  const started = performance.now();
  const client = await launch({ binary, registry, dataDir });
  const elapsed = performance.now() - started;
  await client.quit();
  return elapsed;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const up = [];
const launched = [];
for (let run = 0; run < Number(runs); run += 1) {
  up.push(await upAlone());
  launched.push(await viaLaunch());
}

const client = await launch({ binary, registry, dataDir });
const latencies = [];
for (let i = 0; i < 200; i += 1) await client.invoke("services:get-all");
for (let i = 0; i < Number(invokes); i += 1) {
  const sent = performance.now();
  await client.invoke("services:get-all");
  latencies.push(performance.now() - sent);
}
await client.quit();
await rm(dataDir, { recursive: true, force: true });
latencies.sort((a, b) => a - b);

console.log(
  JSON.stringify({
    up_ms: median(up),
    launch_ms: median(launched),
    launch_overhead_ms: median(launched) - median(up),
    invoke_p50_ms: latencies[Math.floor(latencies.length * 0.5)],
    invoke_p99_ms: latencies[Math.floor(latencies.length * 0.99)],
  }),
);
