// The Node-only half of the client: reading `<dataDir>/ipc.json`, telling whether a pid still
// runs, and `post` for `invoke` (over ./http1.js). index.js imports it only when asked to, so a
// browser never loads it.

import { readFile } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { Agent } from "./http1.js";

/** `{ url, token, pid }` of the conductor running on `dataDir`. */
export async function readIpcInfo(dataDir) {
  const path = join(dataDir, "ipc.json");
  let text;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if (error.code === "ENOENT") {
      throw new Error(`${path} does not exist: is conductor running with --data-dir ${dataDir}?`, {
        cause: error,
      });
    }
    throw error;
  }
  const info = JSON.parse(text);
  if (typeof info.url !== "string" || typeof info.token !== "string") {
    throw new Error(`${path} lacks "url" or "token": ${text}`);
  }
  return { url: info.url.replace(/\/+$/, ""), token: info.token, pid: info.pid };
}

/** Whether `pid` is a live process (a zombie, exited but not yet reaped, counts as gone). */
export function isAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return error.code === "EPERM";
  }
  // No procfs (macOS, Windows): signal 0 is all there is.
  if (!existsSync("/proc/self/stat")) return true;
  try {
    // `pid (comm) state ...`; comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

// Idle sockets are closed after 5 s. Conductor's own limit for an idle connection is 30 s, but
// hyper's 10 s header read timeout also runs while a kept-alive connection waits for its next
// request, so conductor in fact closes it after 10 s; closing well before that, a request
// rarely meets a socket the server has just closed (one that does is sent again once, on a
// new socket: the server never read it). An idle socket does not keep the process alive.
export const agent = new Agent({ maxIdle: 16, idleTimeoutMs: 5_000 });

/**
 * `fetch(url, { method, headers, body })` for a string body, over ./http1.js's lean HTTP/1.1
 * client: resolves with `{ status, ok, headers, text() }`; rejects when the request never got
 * a whole response (refused connection, connection closed mid-response, malformed response).
 */
export function post(url, init) {
  return agent.post(url, init);
}
