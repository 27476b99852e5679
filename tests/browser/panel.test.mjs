// Issue 16, in a real headless Chromium: the debug panel conductor serves at GET / shows the
// fleet live (states, ports, pids, health, logs, skipped lines), drives it (start, stop,
// restart, with their errors), is usable by keyboard, catches up after its event stream drops,
// and with a wrong or no token says so and asks nothing more. No page may log a console error.
// Screenshots of every run land in target/panel-screenshots/ for a person to look at.

import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { DEADLINE_MS, binary, startChromium, startConductor, tempDir } from './support.mjs';

const SCREENSHOTS = new URL('../../target/panel-screenshots/', import.meta.url);

/**
 * The fleet: a critical service, one that may fail without making the app critical, a disabled
 * one, and one that writes a burst of 3000 lines when (re)started while `flag` exists.
 */
function fleetServices(flag) {
  return [
    { name: 'records' },
    { name: 'export', dependsOn: ['records'], critical: false },
    { name: 'reserved', enabled: false, critical: false },
    {
      name: 'ingestion',
      critical: false,
      command: '/bin/sh',
      args: ['-c', 'if [ -e "$BURST_FLAG" ]; then FAKE_LOG_BURST=3000 exec "$FAKE_SERVICE"; else exec "$FAKE_SERVICE"; fi'],
      env: { BURST_FLAG: flag, FAKE_SERVICE: binary('FAKE_SERVICE_BIN') },
    },
  ];
}

/** POST /ipc/<channel> from the test itself, to compare the page with conductor's answer. */
async function invoke(fleet, channel, body) {
  const response = await fetch(`${fleet.url}/ipc/${channel}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${fleet.token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.equal(response.status, 200, `${channel}: ${await response.clone().text()}`);
  return response.json();
}

/** Runs in the page: the text of one cell of a service's row. */
function field(name, key) {
  return document.querySelector(`tr[data-service="${name}"] [data-field="${key}"]`)?.textContent;
}

describe('the debug panel', () => {
  let fleet;
  let chromium;
  let page;
  let scratch;
  /** Console errors and uncaught exceptions of every page, by page label. */
  const problems = [];

  before(async () => {
    scratch = await tempDir('panel');
    fleet = await startConductor({
      services: fleetServices(join(scratch, 'burst')),
      // A quick restart (the SIGKILL test allows 1 s) and samples often enough for sparklines.
      defaults: ['restart = { backoff = "100ms" }', 'metrics_interval = "250ms"'],
    });
    chromium = await startChromium();
    page = await openPanel('panel', `${fleet.url}/#token=${fleet.token}`, { width: 1280, height: 800 });
  });

  after(async () => {
    // Pages close with the browser; the browser goes before conductor so no stream errors late.
    const results = await Promise.allSettled([chromium?.stop()]);
    results.push(...(await Promise.allSettled([fleet?.stop()])));
    if (scratch) results.push(...(await Promise.allSettled([rm(scratch, { recursive: true, force: true })])));
    const failures = results.filter((result) => result.status === 'rejected').map((result) => result.reason);
    if (failures.length > 0) throw new AggregateError(failures, 'cleaning up the panel test');
  });

  /** A new tab at `address`, its console errors collected under `label`, once it rendered. */
  async function openPanel(label, address, viewport, { ready = true, onRequest } = {}) {
    const tab = await chromium.browser.newPage();
    tab.setDefaultTimeout(DEADLINE_MS);
    await tab.setViewport(viewport);
    tab.on('console', (message) => {
      if (message.type() === 'error') problems.push({ label, text: message.text(), url: message.location()?.url });
    });
    tab.on('pageerror', (error) => problems.push({ label, text: `uncaught: ${error.message}` }));
    if (onRequest) tab.on('request', onRequest);
    await tab.goto(address);
    if (ready) await tab.waitForSelector('body[data-ready="true"]');
    return tab;
  }

  /**
   * Resolves once `predicate(row, arg)` (run in the page, on the row of `name`) is true; the
   * page's CSP forbids eval, so the predicate is wrapped here rather than rebuilt there.
   */
  function waitForRow(name, predicate, arg) {
    return page.waitForFunction(
      `(() => { const row = document.querySelector('tr[data-service="${name}"]'); ` +
        `return Boolean(row) && (${predicate.toString()})(row, ${JSON.stringify(arg ?? null)}); })()`,
      { polling: 'mutation' },
    );
  }

  it('lists every service with its state and port, and the health app:health reports', async () => {
    const statuses = await invoke(fleet, 'services:get-all');
    const rows = await page.$$eval('#service-rows tr', (rows) =>
      rows.map((row) => ({
        name: row.dataset.service,
        state: row.dataset.state,
        text: row.querySelector('[data-field="state-text"]').textContent,
        port: row.querySelector('[data-field="port"]').textContent,
      })),
    );
    assert.deepEqual(
      rows,
      statuses.map((status) => ({ name: status.name, state: status.status, text: status.status, port: String(status.port) })),
    );
    assert.deepEqual(
      rows.map((row) => [row.name, row.state]),
      [['records', 'running'], ['export', 'running'], ['reserved', 'disabled'], ['ingestion', 'running']],
    );
    const health = await invoke(fleet, 'app:health');
    const shown = await page.$eval('#health', (element) => ({
      status: element.dataset.health,
      failing: element.dataset.failing,
    }));
    assert.deepEqual(shown, { status: health.status, failing: health.failing.join(',') });
    // The token left the address bar and lives in the tab's sessionStorage.
    assert.equal(new URL(page.url()).hash, '');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('conductor.panel.token')), fleet.token);
    // The database section shows conductor's answer.
    const database = await invoke(fleet, 'database:status');
    assert.equal(await page.$eval('[data-field="db-path"]', (element) => element.textContent), database.path);
    // Uptime ticks in the page, with no request: it leaves 0s on its own.
    await waitForRow('records', (row) => /^[1-9]\d*s$|m/.test(row.querySelector('[data-field="uptime"]').textContent));
  });

  it('is usable by keyboard: Tab reaches the buttons and the log controls, each with a visible focus ring', async () => {
    await page.evaluate(() => document.activeElement?.blur());
    const seen = [];
    for (let step = 0; step < 40; step += 1) {
      await page.keyboard.press('Tab');
      const focused = await page.evaluate(() => {
        const element = document.activeElement;
        const style = getComputedStyle(element);
        return {
          tag: element.tagName.toLowerCase(),
          id: element.id,
          action: element.dataset.action,
          service: element.closest('tr')?.dataset.service,
          outline: `${style.outlineStyle} ${style.outlineWidth}`,
        };
      });
      seen.push(focused);
      if (focused.id === 'log') break;
    }
    const names = seen.map(({ tag, id, action, service }) => (action ? `${action} ${service}` : id || tag));
    for (const expected of ['stop records', 'restart records', 'start reserved', 'log-service', 'log-level', 'log-text', 'log-follow', 'log']) {
      assert.ok(names.includes(expected), `Tab reaches ${expected}: ${names}`);
    }
    for (const focused of seen) assert.equal(focused.outline, 'solid 2px', JSON.stringify(focused));
    await page.evaluate(() => document.activeElement?.blur());
  });

  it('a service SIGKILLed from outside leaves running and is back with a new pid within 1 s, without a reload', async () => {
    const before = Number(await page.evaluate(field, 'export', 'pid'));
    assert.ok(before > 0, `export's pid shown: ${before}`);
    // Every state the row goes through, seen by the page itself.
    await page.evaluate(() => {
      const row = document.querySelector('tr[data-service="export"]');
      window.__exportStates = [];
      window.__panelLoads = performance.getEntriesByType('navigation').length;
      new MutationObserver(() => window.__exportStates.push(row.dataset.state)).observe(row, {
        attributes: true,
        attributeFilter: ['data-state'],
      });
    });
    const killedAt = Date.now();
    process.kill(before, 'SIGKILL');
    await waitForRow('export', (row) => row.dataset.state !== 'running');
    await waitForRow(
      'export',
      (row, old) => {
        const pid = row.querySelector('[data-field="pid"]').textContent;
        return row.dataset.state === 'running' && pid !== String(old) && pid !== '—';
      },
      before,
    );
    const elapsed = Date.now() - killedAt;
    const states = await page.evaluate(() => window.__exportStates);
    assert.ok(states.some((state) => state !== 'running'), `states seen: ${states}`);
    assert.ok(elapsed <= 1000, `back running ${elapsed} ms after the kill (states: ${states})`);
    const after = Number(await page.evaluate(field, 'export', 'pid'));
    assert.notEqual(after, before);
    const status = (await invoke(fleet, 'services:get-all')).find((service) => service.name === 'export');
    assert.equal(status.pid, after);
    // Same document all along: the page was not reloaded.
    assert.equal(await page.evaluate(() => typeof window.__exportStates), 'object');
  });

  it('clicking restart shows the request in flight and changes the pid', async () => {
    const before = await page.evaluate(field, 'records', 'pid');
    // Every label the button shows, seen by the page itself (the request may be quick).
    await page.evaluate(() => {
      const button = document.querySelector('tr[data-service="records"] button[data-action="restart"]');
      window.__restartButton = [];
      new MutationObserver(() =>
        window.__restartButton.push({ label: button.textContent, disabled: button.disabled }),
      ).observe(button, { attributes: true, childList: true, characterData: true, subtree: true });
    });
    await page.click('tr[data-service="records"] button[data-action="restart"]');
    await waitForRow(
      'records',
      (row, old) => {
        const pid = row.querySelector('[data-field="pid"]').textContent;
        const button = row.querySelector('button[data-action="restart"]');
        return row.dataset.state === 'running' && pid !== old && pid !== '—' && !button.dataset.busy;
      },
      before,
    );
    assert.equal(await page.evaluate(field, 'records', 'action-error'), '');
    const labels = await page.evaluate(() => window.__restartButton);
    assert.ok(
      labels.some(({ label, disabled }) => label === 'Restarting…' && disabled),
      `the button showed the request in flight: ${JSON.stringify(labels)}`,
    );
  });

  it('clicking stop greys the row, and start brings it back', async () => {
    await page.click('tr[data-service="export"] button[data-action="stop"]');
    await waitForRow('export', (row) => row.dataset.state === 'stopped' && row.dataset.tone === 'off');
    const grey = await page.$eval('tr[data-service="export"] .dot', (dot) => [
      getComputedStyle(dot).backgroundColor,
      getComputedStyle(document.documentElement).getPropertyValue('--off').trim(),
    ]);
    assert.equal(grey[0], 'rgb(138, 144, 153)', `the dot is grey (--off ${grey[1]})`);
    assert.equal(await page.evaluate(field, 'export', 'pid'), '—');
    await waitForRow('export', (row) => row.querySelector('button[data-action="start"]').disabled === false);
    await page.click('tr[data-service="export"] button[data-action="start"]');
    await waitForRow(
      'export',
      (row) => row.dataset.state === 'running' && /^\d+$/.test(row.querySelector('[data-field="pid"]').textContent),
    );
    const health = await invoke(fleet, 'app:health');
    await page.waitForFunction((status) => document.querySelector('#health').dataset.health === status, {}, health.status);
  });

  it('a refused action shows its error in the row', async () => {
    await page.click('tr[data-service="reserved"] button[data-action="start"]');
    await waitForRow('reserved', (row) => row.querySelector('[data-field="action-error"]').textContent !== '');
    const error = await page.evaluate(field, 'reserved', 'action-error');
    assert.match(error, /^start failed: .*\S/);
    assert.equal(await page.evaluate(field, 'reserved', 'state-text'), 'disabled');
    // The buttons are usable again once the request ended.
    assert.equal(await page.$eval('tr[data-service="reserved"] button[data-action="start"]', (button) => button.disabled), false);
  });

  it('a line a service prints after the page loaded appears within 1 s; the level filter hides it', async () => {
    const marker = `panel-marker-${process.pid}-${Date.now()}`;
    const printedAt = Date.now();
    const printed = await fetch(`http://127.0.0.1:${fleet.ports.records}/print?INFO+${marker}+info`);
    assert.equal(printed.status, 200);
    await fetch(`http://127.0.0.1:${fleet.ports.records}/print?WARN+${marker}+warn`);
    const rowsWith = (text) =>
      [...document.querySelectorAll('#log .log-row')]
        .filter((row) => row.textContent.includes(text))
        .map((row) => row.dataset.level);
    await page.waitForFunction((text) => {
      const rows = [...document.querySelectorAll('#log .log-row')];
      return rows.some((row) => row.textContent.includes(`${text} info`));
    }, { polling: 'mutation' }, marker);
    const elapsed = Date.now() - printedAt;
    assert.ok(elapsed <= 1000, `the line appeared ${elapsed} ms after it was printed`);
    await page.waitForFunction((text) => [...document.querySelectorAll('#log .log-row')].some((row) => row.textContent.includes(`${text} warn`)), { polling: 'mutation' }, marker);
    assert.deepEqual(await page.evaluate(rowsWith, marker), ['info', 'warn']);
    // Following: the newest line ends up in view at the bottom of the pane.
    await page.waitForFunction(() => {
      const log = document.querySelector('#log');
      const last = log.lastElementChild.getBoundingClientRect();
      const pane = log.getBoundingClientRect();
      return last.bottom <= pane.bottom + 1 && last.top >= pane.top;
    });

    // One service's lines only.
    await page.select('#log-service', 'export');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#log .log-row')];
      return rows.length > 0 && rows.every((row) => row.dataset.service === 'export');
    }, { polling: 'mutation' });
    await page.select('#log-service', '');
    await page.select('#log-level', 'warn');
    // Both halves: the warn line shown (the pane shows every service again) and the info one not.
    await page.waitForFunction((text) => {
      const rows = [...document.querySelectorAll('#log .log-row')];
      return (
        rows.some((row) => row.textContent.includes(`${text} warn`)) &&
        !rows.some((row) => row.textContent.includes(`${text} info`))
      );
    }, { polling: 'mutation' }, marker);
    assert.deepEqual(await page.evaluate(rowsWith, marker), ['warn']);
    // The text filter leaves only matching lines; clearing both brings everything back.
    await page.select('#log-level', 'debug');
    await page.type('#log-text', marker);
    await page.waitForFunction((text) => {
      const rows = [...document.querySelectorAll('#log .log-row')];
      return rows.length === 2 && rows.every((row) => row.textContent.includes(text));
    }, { polling: 'mutation' }, marker);
    await page.$eval('#log-text', (input) => {
      input.value = '';
      input.dispatchEvent(new Event('input'));
    });
    await page.waitForFunction(() => document.querySelectorAll('#log .log-row').length > 2, { polling: 'mutation' });
  });

  it('a log line holding markup is shown as text, never run or rendered', async () => {
    const marker = `panel-hostile-${process.pid}-${Date.now()}`;
    const line = `ERROR ${marker} <img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> & done`;
    const printed = await fetch(`http://127.0.0.1:${fleet.ports.records}/print?${encodeURIComponent(line)}`);
    assert.equal(printed.status, 200);
    await page.waitForFunction((text) => {
      const rows = [...document.querySelectorAll('#log .log-row')];
      return rows.some((row) => row.textContent.includes(text));
    }, { polling: 'mutation' }, marker);
    const seen = await page.evaluate((text) => {
      const row = [...document.querySelectorAll('#log .log-row')].find((r) => r.textContent.includes(text));
      return {
        text: row.querySelector('.log-message').textContent,
        elements: row.querySelectorAll('img, script').length,
        pwned: window.__pwned,
      };
    }, marker);
    assert.equal(seen.elements, 0, 'the markup became elements');
    assert.equal(seen.pwned, undefined, 'the markup ran');
    assert.ok(seen.text.includes('<img src=x onerror="window.__pwned=1"><script>') && seen.text.includes('& done'), seen.text);
  });

  it('writes screenshots at 1280×800 and 800×600, light and dark', async () => {
    await mkdir(SCREENSHOTS, { recursive: true });
    // Sparklines with a few points, as a person would see them after a moment.
    await page.waitForFunction(() =>
      [...document.querySelectorAll('tr[data-state="running"] [data-field="memory"] canvas')].every(
        (canvas) => Number(canvas.dataset.samples) >= 4,
      ),
    );
    await page.$eval('#log-text', (input) => input.blur());
    for (const scheme of ['light', 'dark']) {
      await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: scheme }]);
      for (const [width, height] of [[1280, 800], [800, 600]]) {
        await page.setViewport({ width, height });
        // Two frames: the layout and the sparklines' redraw for the new scheme.
        await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
        // Following, the newest line is in view whatever the size.
        await page.waitForFunction(() => {
          const log = document.querySelector('#log');
          const last = log.lastElementChild.getBoundingClientRect();
          const pane = log.getBoundingClientRect();
          return last.bottom <= pane.bottom + 1 && last.top >= pane.top;
        });
        const suffix = scheme === 'light' ? '' : '-dark';
        await page.screenshot({ path: new URL(`panel-${width}x${height}${suffix}.png`, SCREENSHOTS).pathname });
      }
    }
    await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'light' }]);
    await page.setViewport({ width: 1280, height: 800 });
  });

  it('a burst of lines says how many were skipped and where they are, and keeps the pane bounded', async () => {
    await writeFile(join(scratch, 'burst'), '');
    await page.click('tr[data-service="ingestion"] button[data-action="restart"]');
    await page.waitForSelector('#log-skipped li[data-service="ingestion"]');
    const notice = await page.$eval('#log-skipped li[data-service="ingestion"]', (item) => item.textContent);
    assert.match(notice, /^ingestion: [\d,]+ lines skipped — open \S*\/ingestion\.log\b/);
    // The lines that were shown arrive too, and the pane never holds more than its cap.
    await page.waitForFunction(
      () => [...document.querySelectorAll('#log .log-row[data-service="ingestion"]')].some((row) => row.textContent.includes('burst out')),
      { polling: 'mutation' },
    );
    assert.ok(await page.$$eval('#log .log-row', (rows) => rows.length <= 2000));
    await mkdir(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: new URL('panel-1280x800-skipped.png', SCREENSHOTS).pathname });
    await page.click('#log-skipped button');
    await page.waitForSelector('#log-skipped', { hidden: true });
    await rm(join(scratch, 'burst'));
  });

  it('when the event stream drops and comes back unable to resume (resync), the page fetches the services again and shows what it missed', async () => {
    const fetched = [];
    const tab = await chromium.browser.newPage();
    tab.setDefaultTimeout(DEADLINE_MS);
    tab.on('console', (message) => {
      if (message.type() === 'error') problems.push({ label: 'resync', text: message.text() });
    });
    tab.on('pageerror', (error) => problems.push({ label: 'resync', text: `uncaught: ${error.message}` }));
    tab.on('request', (request) => {
      if (new URL(request.url()).pathname === '/ipc/services:get-all') fetched.push(Date.now());
    });
    // Before the page's scripts: an EventSource that remembers its instances and, once asked,
    // reconnects with an id this run never sent (conductor answers that with `resync`).
    await tab.evaluateOnNewDocument(() => {
      const Native = window.EventSource;
      window.__eventSources = [];
      window.__resumeFromNowhere = false;
      window.EventSource = class extends Native {
        constructor(url, init) {
          const address = window.__resumeFromNowhere ? url.replace(/lastEventId=[^&]*/, 'lastEventId=-1') : url;
          super(address, init);
          window.__eventSources.push(address);
          window.__lastEventSource = this;
          this.addEventListener('app:metrics', () => {
            window.__sawEvent = true;
          });
        }
      };
    });
    try {
      await tab.goto(`${fleet.url}/#token=${fleet.token}`);
      await tab.waitForSelector('body[data-ready="true"]');
      await tab.waitForSelector('#connection[data-connection="live"]');
      // An event with an id seen, so the reconnection asks to resume (and is told `resync`).
      await tab.waitForFunction(() => window.__sawEvent === true);
      const before = fetched.length;
      const pid = await tab.evaluate(field, 'export', 'pid');
      // The stream drops (as a network blip would end it) while export restarts.
      await tab.evaluate(() => {
        window.__resumeFromNowhere = true;
        window.__lastEventSource.onerror(new Event('error'));
      });
      await invoke(fleet, 'services:restart', { serviceName: 'export' });
      await tab.waitForFunction(
        (old) => {
          const row = document.querySelector('tr[data-service="export"]');
          const shown = row.querySelector('[data-field="pid"]').textContent;
          return row.dataset.state === 'running' && shown !== old && shown !== '—';
        },
        { polling: 'mutation' },
        pid,
      );
      await tab.waitForFunction((n) => window.__eventSources.length > n, {}, 1);
      const sources = await tab.evaluate(() => window.__eventSources);
      assert.match(sources.at(-1), /lastEventId=-1/, `it reconnected: ${sources}`);
      assert.ok(fetched.length > before, `services:get-all asked again after the resync (${fetched.length - before} times)`);
    } finally {
      await tab.close();
    }
  });

  /** A tab on `url` that does not wait for the panel to be ready, and the API paths it asks. */
  async function openCountingApi(label, url) {
    const api = [];
    const tab = await openPanel(label, url, { width: 800, height: 600 }, {
      ready: false,
      onRequest: (request) => {
        const { pathname } = new URL(request.url());
        if (pathname.startsWith('/ipc/') || pathname.startsWith('/events')) api.push(pathname);
      },
    });
    return { tab, api };
  }

  it('a wrong token shows the not-authorised message and makes no further requests', async () => {
    const { tab, api } = await openCountingApi('wrong token', `${fleet.url}/#token=wrong-${fleet.token.slice(0, 8)}`);
    try {
      await tab.waitForSelector('#message[data-kind="unauthorised"]');
      const text = await tab.$eval('#message', (element) => element.textContent);
      assert.match(text, /not authorised — run conductor open to get the panel's URL/);
      // Quiet for a while: no retry, no event stream.
      await tab.waitForNetworkIdle({ idleTime: 750, timeout: DEADLINE_MS });
      assert.deepEqual(api, ['/ipc/services:get-all']);
      assert.equal(await tab.$eval('#services-section', (element) => element.hidden), true);
      await mkdir(SCREENSHOTS, { recursive: true });
      await tab.screenshot({ path: new URL('panel-not-authorised.png', SCREENSHOTS).pathname });
    } finally {
      await tab.close();
    }
    // The refused request is the browser's one expected console line for that tab.
    const index = problems.findIndex((problem) => problem.label === 'wrong token' && /status of 401/.test(problem.text));
    assert.ok(index >= 0, `the 401 was seen: ${JSON.stringify(problems)}`);
    problems.splice(index, 1);
  });

  it('without a token it says so and asks nothing of the API', async () => {
    const { tab, api } = await openCountingApi('no token', `${fleet.url}/`);
    try {
      await tab.waitForSelector('#message[data-kind="unauthorised"]');
      await tab.waitForNetworkIdle({ idleTime: 500, timeout: DEADLINE_MS });
      assert.deepEqual(api, []);
    } finally {
      await tab.close();
    }
  });

  it('no page logged a console error or threw', async () => {
    assert.deepEqual(problems, []);
  });
});
