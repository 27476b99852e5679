// Issue 17, in a real headless Chromium: a page on an origin the registry allows calls the
// control API directly (fetch with the bearer token, which needs a CORS preflight, and
// EventSource on /events?token=), and a page on any other origin (a second static server, a
// data: page standing in for an unlisted file:// or app:// renderer) is refused.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { DEADLINE_MS, startChromium, startConductor, startPageServer, within } from './support.mjs';

const PAGE = '<!doctype html><title>renderer</title><p>renderer</p>';

/** Runs in the page: POST /ipc/<channel> with the token, as a renderer would. */
async function invokeInPage({ url, token, channel, body }) {
  try {
    const response = await fetch(`${url}/ipc/${channel}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    });
    return { status: response.status, body: await response.json() };
  } catch (error) {
    return { failed: `${error.name}: ${error.message}` };
  }
}

/**
 * Runs in the page: opens an EventSource, restarts `serviceName` once it is open and resolves
 * with the first `service:status-changed` state of that service; or with how it failed.
 */
function restartAndWatchInPage({ url, token, serviceName, deadlineMs }) {
  return new Promise((resolve) => {
    const source = new EventSource(`${url}/events?token=${token}`);
    const done = (result) => {
      clearTimeout(timer);
      source.close();
      resolve(result);
    };
    const timer = setTimeout(() => done({ failed: `no event within ${deadlineMs} ms` }), deadlineMs);
    source.addEventListener('service:status-changed', (event) => {
      const change = JSON.parse(event.data);
      if (change.serviceName === serviceName) done({ status: change.status.status });
    });
    // A CORS refusal fails the connection for good (readyState CLOSED, no reconnect).
    source.onerror = () => done({ failed: 'error', readyState: source.readyState });
    source.onopen = () => {
      fetch(`${url}/ipc/services:restart`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ serviceName }),
      }).catch((error) => done({ failed: `restart: ${error.message}` }));
    };
  });
}

/**
 * Runs in the page: the JS client (`clients/js`, served by the page's own origin) connects,
 * `invoke`s `services:get-all`, listens `on('service:status-changed')`, restarts
 * `serviceName` and resolves with what it saw.
 */
async function clientInPage({ url, token, serviceName, deadlineMs }) {
  const { connect } = await import('/client/index.js');
  let restart;
  // The restart is asked for once the stream is open, so its events cannot be missed.
  const client = await connect({ url, token, onStreamOpen: () => restart?.() });
  const statuses = await client.invoke('services:get-all');
  const seen = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ failed: `no event within ${deadlineMs} ms` }), deadlineMs);
    let restarted = false;
    restart = () => {
      if (restarted) return;
      restarted = true;
      client.invoke('services:restart', { serviceName }).catch((error) => {
        clearTimeout(timer);
        resolve({ failed: `restart: ${error.message}` });
      });
    };
    const stop = client.on('service:status-changed', (change) => {
      if (change.serviceName === serviceName) {
        clearTimeout(timer);
        stop();
        resolve({ status: change.status.status });
      }
    });
  });
  client.close?.();
  return { names: statuses.map((service) => service.name), ...seen };
}

describe('control API from a browser page', () => {
  let allowed;
  let other;
  let fleet;
  let chromium;

  before(async () => {
    allowed = await startPageServer(PAGE, {
      scripts: new URL('../../clients/js/src/', import.meta.url).pathname,
    });
    other = await startPageServer(PAGE);
    fleet = await startConductor({ allowedOrigins: [allowed.origin] });
    chromium = await startChromium();
  });

  after(async () => {
    // Each one even if another fails to stop, and every failure reported.
    const results = await Promise.allSettled([chromium?.stop(), fleet?.stop(), allowed?.stop(), other?.stop()]);
    const failures = results.filter((result) => result.status === 'rejected').map((result) => result.reason);
    if (failures.length > 0) throw new AggregateError(failures, 'cleaning up the browser test');
  });

  async function openPage(address) {
    const page = await chromium.browser.newPage();
    page.setDefaultTimeout(DEADLINE_MS);
    await page.goto(address);
    return page;
  }

  it('a page on an allowed origin fetches a channel with the token', async () => {
    const page = await openPage(`${allowed.origin}/`);
    try {
      const result = await page.evaluate(invokeInPage, {
        url: fleet.url,
        token: fleet.token,
        channel: 'services:get-all',
      });
      assert.equal(result.status, 200, JSON.stringify(result));
      assert.deepEqual(
        result.body.map((service) => [service.name, service.status]),
        [['records', 'running'], ['export', 'running']],
      );
    } finally {
      await page.close();
    }
  });

  it('a page on an allowed origin receives events through EventSource', async () => {
    const page = await openPage(`${allowed.origin}/`);
    try {
      const result = await within(
        DEADLINE_MS + 5_000,
        'the page to see a status change',
        page.evaluate(restartAndWatchInPage, {
          url: fleet.url,
          token: fleet.token,
          serviceName: 'records',
          deadlineMs: DEADLINE_MS,
        }),
      );
      assert.equal(result.status, 'stopping', JSON.stringify(result));
    } finally {
      await page.close();
    }
  });

  it('a page on an allowed origin uses the JS client: invoke and on', async () => {
    const page = await openPage(`${allowed.origin}/`);
    try {
      const result = await within(
        DEADLINE_MS + 5_000,
        'the client in the page to see a status change',
        page.evaluate(clientInPage, {
          url: fleet.url,
          token: fleet.token,
          serviceName: 'export',
          deadlineMs: DEADLINE_MS,
        }),
      );
      assert.deepEqual(result.names, ['records', 'export'], JSON.stringify(result));
      assert.equal(result.status, 'stopping', JSON.stringify(result));
    } finally {
      await page.close();
    }
  });

  for (const [label, address] of [
    ['another origin', () => `${other.origin}/`],
    ['a data: page', () => `data:text/html,${encodeURIComponent(PAGE)}`],
  ]) {
    it(`${label} cannot fetch a channel nor open the event stream`, async () => {
      const page = await openPage(address());
      try {
        const fetched = await page.evaluate(invokeInPage, {
          url: fleet.url,
          token: fleet.token,
          channel: 'services:get-all',
        });
        assert.match(fetched.failed ?? JSON.stringify(fetched), /^TypeError: /);
        const watched = await page.evaluate(restartAndWatchInPage, {
          url: fleet.url,
          token: fleet.token,
          serviceName: 'records',
          deadlineMs: DEADLINE_MS,
        });
        assert.deepEqual(watched, { failed: 'error', readyState: 2 });
      } finally {
        await page.close();
      }
    });
  }
});
