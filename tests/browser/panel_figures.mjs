// The debug panel's performance figures (issue 16), for `cargo xtask bench`:
//
//   node panel_figures.mjs <conductor> <fake-service> <chromium> [screenshot.png]
//
// starts conductor over 100 fake services that print 100 lines each at startup (a tail of
// 10 000 log lines), opens the panel in headless Chromium and prints one JSON line:
//   firstRenderMs        median of 5 page loads, navigation start -> every row and the log pane
//                        rendered (the page sets window.__panelRendered = performance.now());
//                        the pane's first render asks for the 2000 lines it shows, the whole
//                        tail follows (fullTailLoadedMs, also from navigation start)
//   floodEventsPerSecond logs:entry events the page received per second while one service
//                        logged ~10 000 lines/s for 3 s
//   worstFrameGapMs      the longest gap between requestAnimationFrame callbacks in that time
// plus what it measured (rows, log rows, lines received and skipped). Progress goes to stderr.
// Not a test: the goals (firstRenderMs < 300 with the release binary) are the bench's.

import { unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const [conductorBin, fakeServiceBin, chromiumBin, screenshot] = process.argv.slice(2);
if (!conductorBin || !fakeServiceBin || !chromiumBin) {
  console.error('usage: node panel_figures.mjs <conductor> <fake-service> <chromium>');
  process.exit(2);
}
process.env.CONDUCTOR_BIN = conductorBin;
process.env.FAKE_SERVICE_BIN = fakeServiceBin;
process.env.CHROMIUM_BIN = chromiumBin;

const { startChromium, startConductor, tempDir } = await import('./support.mjs');

const N_SERVICES = 100;
const LINES_EACH = 100;
const N_LOADS = 5;
const FLOOD_RATE = 10_000;
const FLOOD_MS = 3_000;
const STEP_MS = 120_000;

const log = (message) => process.stderr.write(`panel_figures: ${message}\n`);

/** Runs `step`, failing after `ms`. */
async function bounded(what, ms, step) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([step(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function invoke(fleet, channel, body) {
  const response = await fetch(`${fleet.url}/ipc/${channel}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${fleet.token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${channel} answered ${response.status}: ${text}`);
  return JSON.parse(text);
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

const round = (value) => Math.round(value * 10) / 10;

let fleet;
let chromium;
const scratch = await tempDir('figures');
// The flooding service is a shell that runs fake-service quiet, or at FLOOD_RATE lines/s
// while this flag file exists; a restart switches it.
const flag = join(scratch, 'flood');
try {
  const services = [];
  for (let index = 1; index < N_SERVICES; index += 1) {
    services.push({
      name: `svc${String(index).padStart(3, '0')}`,
      env: { FAKE_LOG_BURST: String(LINES_EACH), FAKE_LOG_LEVELS: 'mixed' },
    });
  }
  services.push({
    name: 'flood',
    command: '/bin/sh',
    args: [
      '-c',
      `if [ -e "$FLOOD_FLAG" ]; then FAKE_LOG_RATE=${FLOOD_RATE} exec "$FAKE_SERVICE"; else exec "$FAKE_SERVICE"; fi`,
    ],
    env: { FLOOD_FLAG: flag, FAKE_SERVICE: fakeServiceBin, FAKE_LOG_BURST: String(LINES_EACH) },
  });
  log(`starting conductor with ${N_SERVICES} services`);
  fleet = await startConductor({
    services,
    deadlineMs: STEP_MS,
  });
  const tail = await invoke(fleet, 'logs:get', { lines: N_SERVICES * LINES_EACH });
  log(`conductor up; the tail holds ${tail.logs.length} lines`);
  chromium = await startChromium();

  const renders = [];
  const fullTails = [];
  let rows = 0;
  let logRows = 0;
  for (let load = 0; load < N_LOADS; load += 1) {
    const page = await chromium.browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    await page.goto(`${fleet.url}/#token=${fleet.token}`);
    const seen = await bounded('the panel to render', STEP_MS, async () => {
      await page.waitForFunction(() => window.__panelRendered !== undefined, { timeout: STEP_MS });
      return page.evaluate(() => ({
        renderedMs: window.__panelRendered,
        rows: document.querySelectorAll('#service-rows tr').length,
        logRows: document.querySelectorAll('#log .log-row').length,
        // Where the time went: each API request's start and end, and the module's.
        stats: JSON.stringify(window.__panelStats),
        requests: performance
          .getEntriesByType('resource')
          .filter((entry) => /\/ipc\/|\.js$/.test(entry.name))
          .map((entry) => `${new URL(entry.name).pathname} ${Math.round(entry.startTime)}-${Math.round(entry.responseEnd)}`),
      }));
    });
    if (seen.rows !== N_SERVICES || seen.logRows === 0) {
      throw new Error(`rendered ${seen.rows} rows and ${seen.logRows} log rows, not ${N_SERVICES} and some`);
    }
    renders.push(seen.renderedMs);
    // The pane's whole 10 000-line tail follows the first render (which asks for what it shows).
    fullTails.push(
      await page.waitForFunction(() => window.__panelStats.fullTailAt, { timeout: STEP_MS }).then((handle) => handle.jsonValue()),
    );
    rows = seen.rows;
    logRows = seen.logRows;
    log(`load ${load + 1}: ${round(seen.renderedMs)} ms (${seen.requests.join(', ')}) ${seen.stats}`);
    if (load < N_LOADS - 1) await page.close();
  }

  // The flood: the last page stays open and measures itself.
  const page = (await chromium.browser.pages()).at(-1);
  await writeFile(flag, '');
  await invoke(fleet, 'services:restart', { serviceName: 'flood' });
  log(`flood on (${FLOOD_RATE} lines/s for ${FLOOD_MS} ms)`);
  const flood = await bounded('the flood measurement', STEP_MS, () =>
    page.evaluate(
      (ms) =>
        new Promise((resolve) => {
          window.__panelStats.longestFrameMs = 0;
          const start = { ...window.__panelStats, at: performance.now() };
          let last = start.at;
          let worst = 0;
          const frame = (now) => {
            worst = Math.max(worst, now - last);
            last = now;
            if (now - start.at < ms) {
              requestAnimationFrame(frame);
              return;
            }
            const stats = window.__panelStats;
            const seconds = (now - start.at) / 1000;
            resolve({
              events: stats.logEvents - start.logEvents,
              lines: stats.logLines - start.logLines,
              skipped: stats.skippedLines - start.skippedLines,
              seconds,
              worst,
              longestRender: stats.longestFrameMs,
            });
          };
          requestAnimationFrame(frame);
        }),
      FLOOD_MS,
    ),
  );
  await unlink(flag);
  await invoke(fleet, 'services:stop', { serviceName: 'flood' });
  // The page after the flood, for a person to look at.
  if (screenshot) await page.screenshot({ path: screenshot });
  const figures = {
    firstRenderMs: round(median(renders)),
    floodEventsPerSecond: round(flood.events / flood.seconds),
    worstFrameGapMs: round(flood.worst),
    firstRenderRunsMs: renders.map(round),
    fullTailLoadedMs: round(median(fullTails)),
    services: rows,
    tailLines: tail.logs.length,
    logRowsRendered: logRows,
    floodLongestRenderMs: round(flood.longestRender),
    floodLinesShownPerSecond: round(flood.lines / flood.seconds),
    floodLinesSkippedPerSecond: round(flood.skipped / flood.seconds),
  };
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} catch (error) {
  log(`failed: ${error.stack ?? error}`);
  process.exitCode = 1;
} finally {
  const results = await Promise.allSettled([chromium?.stop()]);
  results.push(...(await Promise.allSettled([fleet?.stop()])));
  for (const result of results) if (result.status === 'rejected') log(`cleanup: ${result.reason}`);
  await unlink(flag).catch(() => {});
  const { rm } = await import('node:fs/promises');
  await rm(scratch, { recursive: true, force: true });
}
