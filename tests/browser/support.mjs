// Fixtures for the browser tests: a real `conductor up` over a fake-service fleet on free
// ports, tiny static page servers (each one origin), and headless Chromium. Every fixture has a
// `stop()` that the tests call in `after` hooks, so nothing outlives a failed test.
// Waits are on events (a stdout line, a process exit), each bounded by a deadline.

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What a step may take on a loaded two-core machine before the test fails. */
export const DEADLINE_MS = 30_000;

/** A program path from the environment; `cargo xtask verify` sets them. */
export function binary(variable, fallback) {
  const value = process.env[variable] ?? fallback;
  if (!value) {
    throw new Error(`${variable} is not set; run these tests through \`cargo xtask verify --browser\``);
  }
  return value;
}

export async function tempDir(label) {
  return mkdtemp(join(tmpdir(), `conductor-browser-${label}-`));
}

/** A port that was free a moment ago (the OS picks it). */
export async function freePort() {
  const server = createTcpServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Serves `html` at every path on 127.0.0.1:<free port>: one origin, `origin`; with `scripts`,
 * also the `.js` files of that directory under `/client/` (the JS client, as an app would
 * bundle it).
 */
export async function startPageServer(html, { scripts } = {}) {
  const server = createServer((request, response) => {
    const name = request.url.startsWith('/client/') ? request.url.slice('/client/'.length) : null;
    if (scripts && name && /^[a-z_]+\.js$/.test(name)) {
      readFile(join(scripts, name)).then(
        (body) => {
          response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
          response.end(body);
        },
        () => {
          response.writeHead(404);
          response.end();
        },
      );
      return;
    }
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(html);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Rejects with `what` once `ms` passed, unless `promise` settled first. */
export function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The fleet `startConductor` runs unless told otherwise: records, and export depending on it. */
const TWO_SERVICES = [{ name: 'records' }, { name: 'export', dependsOn: ['records'] }];

/**
 * Writes a registry of fake services allowing `allowedOrigins`, runs `conductor up` on a fresh
 * data dir and resolves once every service is ready, with `{ url, token, ports }` (ports by
 * service name) from ipc.json. `services` (default: records and export) are
 * `{ name, env?, dependsOn?, critical?, enabled?, command?, args? }` (command: fake-service); `defaults` and `logs` are extra TOML lines
 * for `[defaults]` and `[logs]` (e.g. `['restart = { backoff = "100ms" }']`); `deadlineMs` bounds
 * the startup (a big fleet on a loaded machine needs more than DEADLINE_MS).
 */
export async function startConductor({ allowedOrigins = [], services = TWO_SERVICES, defaults = [], logs = [], deadlineMs = DEADLINE_MS } = {}) {
  const conductorBin = binary('CONDUCTOR_BIN');
  const fakeService = binary('FAKE_SERVICE_BIN');
  const dir = await tempDir('fleet');
  const ports = {};
  const taken = new Set();
  for (const { name } of services) {
    // The OS may hand a just-released port out again: each service gets its own.
    let port;
    do port = await freePort();
    while (taken.has(port));
    taken.add(port);
    ports[name] = port;
  }
  const table = (entries) =>
    `{ ${Object.entries(entries).map(([key, value]) => `${JSON.stringify(key)} = ${JSON.stringify(value)}`).join(', ')} }`;
  const registry = `[app]
name = "BrowserTest"
allowed_origins = ${JSON.stringify(allowedOrigins)}
${logs.length > 0 ? `\n[logs]\n${logs.join('\n')}\n` : ''}
[defaults]
health = { kind = "http", path = "/health", interval = "300ms", timeout = "2s", failure_threshold = 3 }
ready_timeout = "20s"
stop_timeout = "5s"
${defaults.map((line) => `${line}\n`).join('')}${services
  .map(({ name, env, dependsOn, critical, enabled, command, args }) => `
[services.${name}]
port = ${ports[name]}
command = ${JSON.stringify(command ?? fakeService)}
${args ? `args = ${JSON.stringify(args)}\n` : ''}${env ? `env = ${table(env)}\n` : ''}${dependsOn ? `depends_on = ${JSON.stringify(dependsOn)}\n` : ''}${critical === undefined ? '' : `critical = ${critical}\n`}${enabled === undefined ? '' : `enabled = ${enabled}\n`}`)
  .join('')}`;
  const registryPath = join(dir, 'conductor.toml');
  const dataDir = join(dir, 'data');
  await writeFile(registryPath, registry);
  const child = spawn(conductorBin, ['up', '--registry', registryPath, '--data-dir', dataDir], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise((resolve, reject) => {
    const onData = (chunk) => {
      output += chunk;
      if (output.includes('✓ All services ready')) resolve();
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', (chunk) => { output += chunk; });
    exited.then(({ code, signal }) =>
      reject(new Error(`conductor exited during startup (${code ?? signal}):\n${output}`)));
    child.once('error', reject);
  });
  const fleet = {
    child,
    output: () => output,
    /** Ends conductor gracefully (SIGTERM stops every service), SIGKILL if it hangs. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        try {
          await within(DEADLINE_MS, 'conductor to stop on SIGTERM', exited);
        } catch (error) {
          child.kill('SIGKILL');
          await exited;
          throw new Error(`${error.message}; killed it:\n${output}`);
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      } else {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
  try {
    await within(deadlineMs, 'conductor to start every service', ready);
    const info = JSON.parse(await readFile(join(dataDir, 'ipc.json'), 'utf8'));
    if (info.pid !== child.pid) throw new Error(`ipc.json names pid ${info.pid}, not ${child.pid}`);
    return { ...fleet, url: info.url, token: info.token, ports, dataDir };
  } catch (error) {
    await fleet.stop().catch(() => {});
    throw error;
  }
}

/** Headless Chromium driven by puppeteer-core; `stop()` closes it, or kills it if that hangs. */
export async function startChromium() {
  const { default: puppeteer } = await import('puppeteer-core');
  const browser = await puppeteer.launch({
    executablePath: binary('CHROMIUM_BIN', '/usr/bin/chromium'),
    headless: true,
    args: [
      // Chromium's Local Network Access checks block a non-secure page (a data: page, an
      // http origin) from reaching loopback before conductor is asked; off, so a refusal
      // seen here is conductor's own. Loopback-to-loopback pages are never blocked by them.
      '--disable-features=LocalNetworkAccessChecks',
      // Chromium refuses to run as root with its sandbox; CI runs as root.
      ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
    ],
    timeout: DEADLINE_MS,
  });
  return {
    browser,
    async stop() {
      const child = browser.process();
      try {
        await within(DEADLINE_MS, 'chromium to close', browser.close());
      } finally {
        if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    },
  };
}
