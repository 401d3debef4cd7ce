#!/usr/bin/env node
// Browser test of the ferryd monitor dashboard (daemon/monitor_assets), headless Chromium via
// playwright-core.
//
//   node tests/browser/dashboard_test.mjs --url URL --stations NAME1,NAME2 --stop-pid PID \
//        --stop-station NAME2 --screenshot PATH [--token T] [--timeout-ms N]
//
// 1. opens URL (with ?token=T when --token is given);
// 2. waits until every station of --stations has a row with data-online="true" and checks that
//    each row's visible text contains the station name and "online";
// 3. sends SIGTERM to --stop-pid, then waits until the row of --stop-station is offline (data
//    attribute and badge text) and checks the other stations are still online;
// 4. saves a full-page screenshot to PATH.
// Prints one line per step; exits 0 on success, 1 on any failure or timeout. Every wait is
// bounded by --timeout-ms (default 60000); no fixed sleeps.
//
// Setup: (cd tests/browser && npm ci). Needs /usr/bin/chromium.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const USAGE = 'usage: node dashboard_test.mjs --url URL --stations NAME1,NAME2 --stop-pid PID ' +
  '--stop-station NAME --screenshot PATH [--token T] [--timeout-ms N]';

function log(msg) { console.log(`[dashboard_test] ${msg}`); }

class Failure extends Error {}

function parseArgs(argv) {
  const known = new Set(['url', 'stations', 'stop-pid', 'stop-station', 'screenshot', 'token', 'timeout-ms']);
  const o = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    let k, v;
    if (a.startsWith('--') && a.includes('=')) { k = a.slice(2, a.indexOf('=')); v = a.slice(a.indexOf('=') + 1); }
    else if (a.startsWith('--')) { k = a.slice(2); v = argv[++i]; }
    else throw new Failure(`unexpected argument "${a}"\n${USAGE}`);
    if (!known.has(k)) throw new Failure(`unknown option --${k}\n${USAGE}`);
    if (v === undefined) throw new Failure(`option --${k} needs a value\n${USAGE}`);
    o[k] = v;
  }
  for (const k of ['url', 'stations', 'stop-pid', 'stop-station', 'screenshot']) {
    if (!o[k]) throw new Failure(`missing --${k}\n${USAGE}`);
  }
  const stations = o.stations.split(',').map((s) => s.trim()).filter(Boolean);
  if (!stations.length) throw new Failure('--stations is empty');
  const stopPid = Number(o['stop-pid']);
  if (!Number.isInteger(stopPid) || stopPid <= 1) throw new Failure(`bad --stop-pid "${o['stop-pid']}"`);
  const stopStation = o['stop-station'];
  if (!stations.includes(stopStation)) throw new Failure(`--stop-station "${stopStation}" is not in --stations`);
  const timeoutMs = o['timeout-ms'] === undefined ? 60000 : Number(o['timeout-ms']);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Failure(`bad --timeout-ms "${o['timeout-ms']}"`);
  let url;
  try { url = new URL(o.url); } catch { throw new Failure(`bad --url "${o.url}"`); }
  if (o.token !== undefined) url.searchParams.set('token', o.token);
  return { url: url.toString(), stations, stopPid, stopStation, timeoutMs, token: o.token,
    screenshot: path.resolve(o.screenshot) };
}

// Runs in the page: the state of the station rows, for conditions and diagnostics.
function pageRowStates(names) {
  const rows = new Map();
  for (const tr of document.querySelectorAll('tr[data-station]')) rows.set(tr.getAttribute('data-station'), tr);
  return names.map((name) => {
    const tr = rows.get(name);
    if (!tr) return { name, present: false };
    const badge = tr.querySelector('.badge');
    return { name, present: true, online: tr.getAttribute('data-online'), silent: tr.getAttribute('data-silent'),
      badgeClass: badge ? badge.className : null, badgeText: badge ? badge.textContent.trim() : null };
  });
}

async function describePage(page, names) {
  try {
    const d = await page.evaluate((n) => {
      const banner = document.getElementById('error');
      const rows = [...document.querySelectorAll('tr[data-station]')].map((tr) => tr.getAttribute('data-station'));
      return { loaded: document.body.getAttribute('data-loaded'),
        banner: banner && !banner.hidden ? banner.textContent : '', rows };
    }, names);
    const states = await page.evaluate(pageRowStates, names);
    return `page: data-loaded=${d.loaded}; station rows: [${d.rows.join(', ')}]` +
      (d.banner ? `; error banner: "${d.banner}"` : '') +
      '\n' + states.map((s) => `  ${s.name}: ` + (s.present
        ? `data-online=${s.online} data-silent=${s.silent} badge="${s.badgeText}" (${s.badgeClass})`
        : 'no row')).join('\n');
  } catch (e) {
    return `page state unavailable: ${e.message}`;
  }
}

async function waitFor(page, what, fn, arg, timeoutMs, names) {
  try {
    await page.waitForFunction(fn, arg, { timeout: timeoutMs, polling: 250 });
  } catch (e) {
    const why = /Timeout/i.test(e.message) ? `timed out after ${timeoutMs} ms` : e.message;
    throw new Failure(`${what}: ${why}\n${await describePage(page, names)}`);
  }
}

// The visible text (innerText) of a station's row; names are compared as strings, not put in
// a CSS selector, so any station name works.
async function rowText(page, name) {
  const text = await page.evaluate((n) => {
    const tr = [...document.querySelectorAll('tr[data-station]')].find((r) => r.getAttribute('data-station') === n);
    return tr ? tr.innerText : null;
  }, name);
  if (text === null) throw new Failure(`no row for station "${name}"`);
  return text;
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const others = opt.stations.filter((s) => s !== opt.stopStation);
  let browser;
  try {
    if (!fs.existsSync(CHROMIUM)) throw new Failure(`${CHROMIUM} not found (apt-get install chromium)`);
    log(`launching ${CHROMIUM}`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: opt.timeoutMs,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    const page = await context.newPage();
    page.on('pageerror', (e) => log(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') log(`page console error: ${m.text()}`); });

    const shown = opt.token !== undefined ? opt.url.replace(/([?&]token=)[^&]*/, '$1***') : opt.url;
    log(`opening ${shown}`);
    let resp;
    try {
      resp = await page.goto(opt.url, { waitUntil: 'domcontentloaded', timeout: opt.timeoutMs });
    } catch (e) {
      throw new Failure(`cannot load the dashboard: ${e.message}`);
    }
    if (!resp || !resp.ok()) throw new Failure(`dashboard answered HTTP ${resp ? resp.status() : '?'}`);
    log(`page loaded (HTTP ${resp.status()}, ${resp.headers()['content-type'] || 'no content type'})`);

    await waitFor(page, 'first successful refresh (body[data-loaded="true"])',
      () => document.body.getAttribute('data-loaded') === 'true', undefined, opt.timeoutMs, opt.stations);
    log('dashboard refreshed from the API');

    await waitFor(page, `stations online: ${opt.stations.join(', ')}`, (names) => {
      const on = new Set([...document.querySelectorAll('tr[data-station][data-online="true"]')]
        .map((tr) => tr.getAttribute('data-station')));
      return names.every((n) => on.has(n));
    }, opt.stations, opt.timeoutMs, opt.stations);
    log(`all stations online: ${opt.stations.join(', ')}`);

    for (const name of opt.stations) {
      const text = await rowText(page, name);
      if (!text.includes(name)) throw new Failure(`row of "${name}" does not show its name: "${text}"`);
      if (!/\bonline\b/.test(text)) throw new Failure(`row of "${name}" does not say "online": "${text}"`);
    }
    log('each station row shows its name and "online"');

    log(`sending SIGTERM to pid ${opt.stopPid} (station ${opt.stopStation})`);
    try {
      process.kill(opt.stopPid, 'SIGTERM');
    } catch (e) {
      throw new Failure(`cannot signal pid ${opt.stopPid}: ${e.code || e.message}`);
    }

    await waitFor(page, `station ${opt.stopStation} shown offline`, (name) => {
      const tr = [...document.querySelectorAll('tr[data-station]')].find((r) => r.getAttribute('data-station') === name);
      if (!tr || tr.getAttribute('data-online') !== 'false') return false;
      const badge = tr.querySelector('.badge');
      return !!badge && badge.classList.contains('offline') && badge.textContent.trim() === 'offline';
    }, opt.stopStation, opt.timeoutMs, opt.stations);
    log(`station ${opt.stopStation} is shown offline`);

    const states = await page.evaluate(pageRowStates, others);
    const bad = states.filter((s) => !s.present || s.online !== 'true' || s.badgeText !== 'online');
    if (bad.length) {
      throw new Failure(`other station(s) no longer online: ${bad.map((s) => s.name).join(', ')}\n` +
        await describePage(page, opt.stations));
    }
    if (others.length) log(`other station(s) still online: ${others.join(', ')}`);

    fs.mkdirSync(path.dirname(opt.screenshot), { recursive: true });
    await page.screenshot({ path: opt.screenshot, fullPage: true, timeout: opt.timeoutMs });
    log(`screenshot saved: ${opt.screenshot}`);
    log('PASS');
    return 0;
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
}

main().then(
  (code) => { process.exitCode = code; },
  (e) => {
    console.error(`[dashboard_test] FAIL: ${e instanceof Failure ? e.message : (e && e.stack) || e}`);
    process.exitCode = 1;
  },
);
