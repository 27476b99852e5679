// What the tests share: the binaries under test, free ports, temp dirs, a registry of
// fake-service processes, polling with deadlines, and finding (and killing) every process a
// test started by the TEST_TAG each of them carries in its environment.

import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** `cargo xtask verify` sets both; by hand, the default target dir's debug build. */
export const CONDUCTOR_BIN =
  process.env.CONDUCTOR_BIN ?? join(repo, "target/debug/conductor");
export const FAKE_SERVICE_BIN =
  process.env.FAKE_SERVICE_BIN ?? join(repo, "target/debug/fake-service");

/** `ServiceStatus`'s fields (SPEC §5 and §9), sorted. */
export const SERVICE_STATUS_FIELDS = [
  "cpuPercent",
  "critical",
  "lastError",
  "lastHealthCheck",
  "memoryBytes",
  "name",
  "pid",
  "port",
  "processes",
  "restarts",
  "status",
  "uptime",
];

/** How long any one awaited condition may take on a loaded two-core machine. */
export const DEADLINE_MS = 20_000;

/** `n` distinct ports that were free a moment ago (bound to port 0, then released). */
export async function freePorts(n) {
  const servers = await Promise.all(
    Array.from({ length: n }, () => {
      const server = createServer();
      return new Promise((resolveListen, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolveListen(server));
      });
    }),
  );
  const ports = servers.map((server) => server.address().port);
  await Promise.all(servers.map((server) => new Promise((done) => server.close(done))));
  return ports;
}

/**
 * A test's sandbox: a temp dir and a tag. `cleanup()` SIGKILLs every process carrying the
 * tag, waits until they are gone (a dying conductor could still write into the dir) and
 * removes the dir; await it in `after`/`afterEach`, so a failing test leaks nothing.
 */
export function sandbox(name) {
  const dir = mkdtempSync(join(tmpdir(), `conductor-js-${name}-`));
  const tag = `conductor-js-${name}-${randomUUID()}`;
  return {
    dir,
    tag,
    dataDir: join(dir, "data"),
    env: { ...process.env, TEST_TAG: tag },
    async cleanup() {
      await waitUntil(`the processes tagged ${tag} to be gone`, () => {
        const left = tagged(tag);
        for (const pid of left) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // Gone between the scan and the signal.
          }
        }
        return left.length === 0;
      });
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
}

/** The pids of live processes whose environment holds `TEST_TAG=<tag>` (Linux /proc). */
export function tagged(tag) {
  const needle = `TEST_TAG=${tag}`;
  const pids = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let environ;
    let stat;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, "latin1");
      stat = readFileSync(`/proc/${entry}/stat`, "latin1");
    } catch {
      continue;
    }
    // A zombie has no environment left to read, and is gone in every sense that matters.
    const state = stat.slice(stat.lastIndexOf(")") + 2)[0];
    if (state !== "Z" && environ.split("\0").includes(needle)) pids.push(Number(entry));
  }
  return pids;
}

/** A TOML string literal. */
export function tomlString(text) {
  return JSON.stringify(text);
}

/**
 * Writes `conductor.toml` with one fake-service per entry of `services`
 * (`{ name, port, critical?, command?, args?, env? }`), every process tagged with `tag`.
 */
export function writeRegistry(dir, tag, services, appName = "JsClientTest") {
  let text = `[app]
name = ${tomlString(appName)}
startup = "dependency"

[defaults]
health = { kind = "http", path = "/health", interval = "300ms", timeout = "2s", failure_threshold = 3 }
ready_timeout = "20s"
stop_timeout = "5s"
restart = { max_retries = 3, backoff = "50ms", backoff_max = "500ms", reset_after = "60s" }
`;
  for (const service of services) {
    const env = { TEST_TAG: tag, ...service.env };
    const envText = Object.entries(env)
      .map(([key, value]) => `${key} = ${tomlString(value)}`)
      .join(", ");
    text += `
[services.${service.name}]
port = ${service.port}
command = ${tomlString(service.command ?? FAKE_SERVICE_BIN)}
args = [${(service.args ?? []).map(tomlString).join(", ")}]
critical = ${service.critical ?? true}
env = { ${envText} }
`;
  }
  const path = join(dir, "conductor.toml");
  writeFileSync(path, text);
  return path;
}

/**
 * Polls `condition` (sync or async; a truthy result ends the wait) with a growing interval
 * until `deadlineMs`, then fails with `what` and the last value or error it saw.
 */
export async function waitUntil(what, condition, deadlineMs = DEADLINE_MS) {
  const deadline = Date.now() + deadlineMs;
  let last;
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    try {
      const value = await condition();
      if (value) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      const seen = last instanceof Error ? last.stack : JSON.stringify(last);
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}; last seen: ${seen}`);
    }
    await new Promise((done) => setTimeout(done, delay));
  }
}

/** Collects the events a listener receives, and waits for one that matches. */
export class Recorder {
  constructor() {
    this.events = [];
  }

  listener(event) {
    return (payload, meta) => this.events.push({ event, payload, id: meta.id });
  }

  /** Resolves with the first recorded event, from index `from` on, that `match` accepts. */
  async waitFor(what, match, from = 0) {
    try {
      return await waitUntil(what, () => this.events.slice(from).find(match) ?? false);
    } catch (error) {
      error.message += `\nevents received: ${JSON.stringify(this.events.slice(from))}`;
      throw error;
    }
  }
}
