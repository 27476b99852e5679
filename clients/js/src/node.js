// The Node-only half of the client: reading `<dataDir>/ipc.json`, telling whether a pid still
// runs, and `post` for `invoke`. index.js imports it only when asked to, so a browser never loads it.

import { readFile } from "node:fs/promises";
import http from "node:http";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

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

// Idle sockets are closed after 20 s, before conductor's own 30 s idle limit, so a request
// rarely meets a socket the server has just closed; and a free socket does not keep the
// process alive (Node unrefs it).
const agent = new http.Agent({ keepAlive: true, timeout: 20_000 });

/**
 * `fetch(url, { method, headers, body })` for a string body, over node:http: resolves with
 * `{ status, ok, text() }`. A request that meets a kept-alive socket the server closed while
 * idle is sent again once on a new one: the server never read it.
 */
export function post(url, init) {
  return send(url, init).catch((error) => {
    if (error.reusedSocket && error.code === "ECONNRESET") return send(url, init);
    throw error;
  });
}

function send(url, { method = "GET", headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      {
        method,
        agent,
        headers:
          body === undefined ? headers : { ...headers, "Content-Length": Buffer.byteLength(body) },
      },
      (response) => {
        response.setEncoding("utf8");
        let text = "";
        response.on("data", (chunk) => {
          text += chunk;
        });
        response.on("end", () => {
          const status = response.statusCode ?? 0;
          resolve({ status, ok: status >= 200 && status < 300, text: async () => text });
        });
        response.on("error", reject);
      },
    );
    request.on("error", (error) => {
      error.reusedSocket = request.reusedSocket;
      reject(error);
    });
    request.end(body);
  });
}
