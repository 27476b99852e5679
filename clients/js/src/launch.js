// `launch()`: the app's main process (Node, Electron's main) starts conductor as its child and
// gets a connected client once every service is up. Node only; the client itself (index.js)
// stays free of Node APIs for browsers and renderers.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

import { Client } from "./index.js";
import * as node from "./node.js";

/** conductor exited (or could not be started) before its startup completed. */
export class LaunchError extends Error {
  constructor(message, { exitCode, signal, stderr, stdout, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "LaunchError";
    this.exitCode = exitCode;
    this.signal = signal;
    this.stderr = stderr;
    this.stdout = stdout;
  }
}

// The lines `conductor up` prints once startup is complete (SPEC §7); ipc.json exists by then,
// since the control API starts before the database and the services.
const READY = "✓ All services ready";
const DEGRADED = "! Running degraded without:";

/**
 * Spawns `conductor up --exit-with-parent --registry R --data-dir D ...args` and resolves with
 * a connected client once startup is complete; rejects with a LaunchError carrying
 * conductor's own stderr and its exit code (2: startup failed, 3: another instance runs on
 * this data dir) when conductor exits first, or after `timeoutMs` (conductor is then killed).
 */
export function launch({
  binary = "conductor",
  registry,
  dataDir,
  args = [],
  onLine,
  env,
  timeoutMs,
} = {}) {
  if (typeof dataDir !== "string") {
    // Without it conductor picks the platform's data dir, and we could not find ipc.json.
    return Promise.reject(new TypeError("launch() needs { dataDir }"));
  }
  const argv = ["up", "--exit-with-parent", "--data-dir", dataDir];
  if (registry !== undefined) argv.push("--registry", registry);
  argv.push(...args);
  const child = spawn(binary, argv, {
    stdio: ["ignore", "pipe", "pipe"],
    env: env ?? process.env,
  });
  const stdout = [];
  const stderr = [];
  let ready = false;

  return new Promise((resolve, reject) => {
    let timer;
    const fail = (error) => {
      clearTimeout(timer);
      reject(error);
    };
    const exited = new Promise((resolveExit) =>
      child.once("close", (code, signal) => resolveExit({ code, signal })),
    );

    child.once("error", (error) => {
      fail(new LaunchError(`could not start ${binary}: ${error.message}`, { cause: error }));
    });

    const lines = (stream, name, sink) => {
      const reader = createInterface({ input: stream, crlfDelay: Infinity });
      reader.on("line", (line) => {
        sink.push(line);
        onLine?.(line, name);
        if (name === "stdout" && !ready && (line === READY || line.startsWith(DEGRADED))) {
          ready = true;
          clearTimeout(timer);
          node.readIpcInfo(dataDir).then(
            (info) =>
              resolve(
                Object.assign(
                  new Client({
                    ...info,
                    reload: () => node.readIpcInfo(dataDir),
                    node,
                    hasExited: () => child.exitCode !== null || child.signalCode !== null,
                  }),
                  { child, exited },
                ),
              ),
            (error) => fail(new LaunchError(`conductor is ready but ${error.message}`, { cause: error })),
          );
        }
      });
      return new Promise((done) => reader.once("close", done));
    };
    const outputRead = Promise.all([
      lines(child.stdout, "stdout", stdout),
      lines(child.stderr, "stderr", stderr),
    ]);

    // "close", not "exit": every line of both pipes has been read by then, so the error
    // carries all that conductor printed.
    exited.then(async ({ code, signal }) => {
      await outputRead;
      if (ready) return;
      const text = stderr.join("\n").trim();
      const how = code === null ? `was killed by ${signal}` : `exited with code ${code}`;
      fail(
        new LaunchError(text || `conductor ${how} before its services were ready`, {
          exitCode: code,
          signal,
          stderr: stderr.join("\n"),
          stdout: stdout.join("\n"),
        }),
      );
    });

    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        child.kill("SIGTERM");
        fail(
          new LaunchError(`conductor was not ready within ${timeoutMs} ms`, {
            stderr: stderr.join("\n"),
            stdout: stdout.join("\n"),
          }),
        );
      }, timeoutMs);
    }
  });
}
