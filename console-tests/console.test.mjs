// The POP web console in a real browser: a real `pop serve` (sled in a temp dir, static tokens for a
// superuser and two customers, a local worker running a trivial handler) driven through headless
// Chromium with playwright-core.
//
//   POP_BIN=../target/debug/pop POP_COMPAT_FIXTURES=../../shared/fixtures/pop-original node console.test.mjs
//
// Env: POP_BIN (the `pop` binary), POP_COMPAT_FIXTURES (the original POP's corpus: the 65-operation
// sample agenda is read from it at run time), CHROMIUM (default /usr/bin/chromium), SCREENSHOTS
// (where to save PNGs of the main pages; default ./screenshots).

import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, chmodSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import assert from 'node:assert/strict';

const POP_BIN = resolve(process.env.POP_BIN || '../target/debug/pop');
const FIXTURES = process.env.POP_COMPAT_FIXTURES;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = resolve(process.env.SCREENSHOTS || 'screenshots');
const TOKENS = { admin: 'admin-token-0123456789', acme: 'acme-token-0123456789', globex: 'globex-token-0123456789' };
const started = Date.now();
const log = (...a) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);

if (!FIXTURES) {
  console.error('POP_COMPAT_FIXTURES is not set: the test reads the 65-operation sample agenda from the original POP corpus');
  process.exit(2);
}

// ------------------------------------------------------------------ the server

function files(dir) {
  writeFileSync(join(dir, 'auth.toml'), `anonymous = "deny"
[[tokens]]
token = "${TOKENS.admin}"
user = "admin"
superuser = true
[[tokens]]
token = "${TOKENS.acme}"
user = "alice"
accounts = ["acme"]
[[tokens]]
token = "${TOKENS.globex}"
user = "gordon"
accounts = ["globex"]
`);
  // the trivial handler: answers the sample's `actionData` at once; `slow` sleeps until killed
  const quick = join(dir, 'quick.sh');
  writeFileSync(quick, '#!/bin/sh\nsleep 0.05\necho \'POP_RESULT {"actionData": "done"}\'\n');
  const slow = join(dir, 'slow.sh');
  writeFileSync(slow, '#!/bin/sh\nsleep 120\necho \'POP_RESULT {}\'\n');
  chmodSync(quick, 0o755);
  chmodSync(slow, 0o755);
  writeFileSync(join(dir, 'registry.json'), JSON.stringify({ sample: { process: { command: quick } }, slow: { process: { command: slow } } }));
}

/** The agenda ids of every page of the listing shown, following the pager's cursor. */
async function everyListedAgenda(page) {
  const seen = [];
  for (;;) {
    seen.push(...(await page.$$eval('#agenda-table tbody tr', (rs) => rs.map((r) => r.dataset.agenda))));
    const next = await page.$('#next-page');
    if (!next) return seen;
    await page.$eval('#agenda-table', (t) => { t.dataset.seen = 'yes'; });
    await next.click();
    await page.waitForSelector('#agenda-table:not([data-seen]), #no-agendas'); // the next page replaced this one
  }
}

function startServer(dir, extra = [], data = 'data') {
  const args = ['serve', '--listen', '127.0.0.1:0', '--data', join(dir, data), '--auth', join(dir, 'auth.toml'), '--registry', join(dir, 'registry.json'), '--worker-insight', 'main', ...extra];
  const child = spawn(POP_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  return new Promise((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`pop serve did not get ready in 30 s: ${err}`)), 30000);
    child.on('exit', (code) => fail(new Error(`pop serve exited with ${code}: ${err}`)));
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('pop serve ready'));
      if (line) { clearTimeout(timer); ok({ child, url: line.split(/\s+/).find((w) => w.startsWith('http://')), stderr: () => err }); }
    });
  });
}

async function apiCall(url, token, method, path, body) {
  const res = await fetch(url + path, { method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}

// ------------------------------------------------------------------ the test

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'pop-console-'));
  files(dir);
  const server = await startServer(dir);
  const { url } = server;
  log('pop serve at', url);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(20000);
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) consoleErrors.push(m.text()); });
  mkdirSync(SHOTS, { recursive: true });
  try {
    // ---- assets and sign-in
    const res = await page.goto(`${url}/ui`);
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-type'], /text\/html/);
    await page.fill('#token', 'not-a-token');
    await page.click('#signin button[type=submit]');
    await page.waitForSelector('#signin-error .errors');
    assert.match(await page.textContent('#signin-error'), /Unauthorized|unknown|token/i);
    await signIn(page, TOKENS.admin);
    log('signed in as the superuser');

    // ---- objects through the forms (the API's validation shown inline)
    await createObject(page, 'pools', { id: 'pool1', title: 'Pool one', customerId: 'ops' }, {});
    await createObject(page, 'insights', { id: 'main', title: 'Main', customerId: 'ops', resourcePoolId: 'pool1' },
      { isGlobal: true, schedulingAlgorithm: 'Fairness', queueSize: 50, mappers: { operationType: ['sample', 'slow'] } });
    await createObject(page, 'insights', { id: 'batch', title: 'Batch (no pool runs it here)', customerId: 'ops', resourcePoolId: 'pool1' },
      { isGlobal: true, schedulingAlgorithm: 'FirstInFirstOut', queueSize: 2, mappers: { operationType: ['batch'] } });
    // a bad field: the API's message appears next to the form
    await page.goto(`${url}/ui#/customers/new`);
    await page.fill('input[name=id]', 'acme');
    await page.fill('input[name=title]', 'Acme');
    await page.fill('input[name=customerId]', 'acme');
    await page.fill('textarea[name=json]', JSON.stringify({ weight: 'heavy' }));
    await page.click('#save');
    await page.waitForSelector('[data-error-for=_other] div, [data-error-for=weight] div');
    const inline = await page.textContent('#object-form');
    assert.match(inline, /weight/, 'the API names the bad field');
    await page.fill('textarea[name=json]', JSON.stringify({ weight: 2, resourcePoolId: 'pool1' }));
    await page.click('#save');
    await page.waitForSelector('#customers-table tr[data-id=acme]');
    await createObject(page, 'customers', { id: 'globex', title: 'Globex', customerId: 'globex' }, { weight: 1, resourcePoolId: 'pool1' });
    // edit: the title changes
    await page.goto(`${url}/ui#/customers/edit/globex`);
    await page.fill('input[name=title]', 'Globex Corp');
    await page.click('#save');
    await page.waitForSelector('#customers-table tr[data-id=globex]');
    assert.match(await page.textContent('#customers-table tr[data-id=globex]'), /Globex Corp/);
    // delete: a throwaway pool
    await createObject(page, 'pools', { id: 'scratch', title: 'Scratch', customerId: 'ops' }, {});
    page.once('dialog', (d) => d.accept());
    await page.click('#pools-table tr[data-id=scratch] [data-delete]');
    await page.waitForSelector('#pools-table tr[data-id=scratch]', { state: 'detached' });
    log('objects created, edited, deleted through the forms');

    // ---- submit: validation per operation, then the 65-operation sample
    const sample = JSON.parse(readFileSync(join(FIXTURES, 'agendas', 'multiSamplePayload.json'), 'utf8'));
    assert.equal(sample.operations.length, 65, 'the original sample has 65 operations');
    sample.customerId = 'acme';
    sample.title = 'original 65-operation sample';
    await page.goto(`${url}/ui#/submit`);
    log('submit page');
    const broken = structuredClone(sample);
    broken.operations[3].payload.x = '@<NoSuchOperation.out>';
    await setEditor(page, JSON.stringify(broken, null, 1));
    await page.click('#validate');
    await page.waitForSelector(`#validation [data-operation="${broken.operations[3].name}"]`);
    assert.match(await page.textContent('#validation'), /NoSuchOperation/);
    log('problems shown per operation');
    await setEditor(page, JSON.stringify(sample, null, 1));
    await page.click('#validate');
    await page.waitForSelector('#valid');
    log('valid');
    assert.match(await page.textContent('#valid'), /65 operations/);
    await page.click('#submit-agenda');
    await page.waitForURL(/#\/agenda\//);
    const sampleId = decodeURIComponent(page.url().split('#/agenda/')[1]);
    log('submitted the 65-operation sample', sampleId);
    await page.waitForFunction(() => document.querySelectorAll('#dag g.node').length === 65);
    const edges = await page.$$eval('#dag path.edge', (es) => es.length);
    assert.ok(edges > 0, 'the DAG has reference edges');
    await page.waitForSelector('#agenda-head[data-state=succeeded]', { timeout: 90000 });
    await page.waitForFunction(() => [...document.querySelectorAll('#dag g.node')].every((n) => n.dataset.state === 'succeeded'));
    log('the sample completed, every node green');
    // a node's details: the payload resolved against its parent's output
    const withRef = sample.operations.find((o) => JSON.stringify(o.payload).includes('@<'));
    await page.click(`#dag g.node[data-name="${withRef.name}"]`);
    await page.waitForSelector('#resolved-payload');
    const resolved = await page.textContent('#resolved-payload');
    assert.ok(!resolved.includes('@<') && resolved.includes('done'), `the payload is resolved: ${resolved}`);
    assert.match(await page.textContent('#result'), /actionData/);
    await page.evaluate(() => { document.querySelector('#dag').style.maxHeight = 'none'; window.scrollTo(0, 0); });
    await page.screenshot({ path: join(SHOTS, 'agenda-dag.png'), fullPage: true });

    // ---- run a template with a payload
    await createObject(page, 'templates', { id: 'echo', title: 'Echo a file', customerId: 'acme' },
      { isGlobal: false, agenda: { customerId: 'acme', operations: [{ name: 'one', type: 'sample', payload: { file: '@<sourceFile>' } }] } });
    await page.goto(`${url}/ui#/submit`);
    await page.waitForSelector('#template option[value=echo]', { state: 'attached' });
    await page.selectOption('#template', 'echo');
    await page.fill('#template-payload', '{"sourceFile": "not json');
    await page.click('#run-template');
    await page.waitForSelector('#run-errors .error');
    await page.fill('#template-payload', JSON.stringify({ sourceFile: 'coolestdog.mp4' }));
    await page.click('#run-template');
    await page.waitForURL(/#\/agenda\//);
    await page.waitForSelector('#agenda-head[data-state=succeeded]', { timeout: 30000 });
    await page.click('#dag g.node[data-name=one]');
    await page.waitForSelector('#resolved-payload');
    assert.match(await page.textContent('#resolved-payload'), /coolestdog\.mp4/);
    log('ran a template with a payload');

    // ---- cancel a running agenda
    await page.goto(`${url}/ui#/submit`);
    await setEditor(page, JSON.stringify({ customerId: 'acme', title: 'slow one', operations: [
      { name: 'first', type: 'sample', payload: {} },
      { name: 'wait', type: 'slow', payload: { after: '@<first.out::/actionData>' } },
      { name: 'never', type: 'sample', payload: { after: '@<wait.out>' } }] }));
    await page.click('#submit-agenda');
    await page.waitForURL(/#\/agenda\//);
    const slowId = decodeURIComponent(page.url().split('#/agenda/')[1]);
    await page.waitForSelector('#dag g.node[data-name=wait][data-state=executing]', { timeout: 30000 });
    await page.click('#cancel');
    await page.waitForSelector('#agenda-head[data-state=cancelled]', { timeout: 30000 });
    log('cancelled a running agenda', slowId);
    // rerun (continue): it runs again from where it stopped
    await page.click('#rerun-continue');
    await page.waitForSelector('#dag g.node[data-name=wait][data-state=executing]', { timeout: 30000 });
    await page.click('#cancel');
    await page.waitForSelector('#agenda-head[data-state=cancelled]', { timeout: 30000 });
    // rerun one operation (operationsToReset): `first` runs again, then `wait`
    await page.click('#dag g.node[data-name=first]');
    await page.waitForSelector('#panel h3');
    const before = await page.textContent('#panel');
    await page.click('#rerun-selected');
    await page.waitForSelector('#dag g.node[data-name=wait][data-state=executing]', { timeout: 30000 });
    // the open panel follows the operation: it ran again (a new update time), and succeeded
    const updated = (t) => (t.match(/"updatedTime": (\d+)/) || [])[1];
    await page.waitForFunction((b) => {
      const t = document.querySelector('#panel').textContent;
      const u = (t.match(/"updatedTime": (\d+)/) || [])[1];
      return u && u !== b && /"processingStateMessage": "succeeded"/.test(t);
    }, updated(before));
    await page.click('#cancel');
    await page.waitForSelector('#agenda-head[data-state=cancelled]', { timeout: 30000 });
    log('rerun (continue, one operation) and cancel again');

    // ---- queues: an insight no pool serves here, with ready agendas waiting
    const waiting = [];
    for (let i = 0; i < 5; i++) {
      const who = i % 2 ? 'globex' : 'acme';
      const r = await apiCall(url, TOKENS[who], 'POST', '/pop/agenda', { customerId: who, title: `batch ${i}`, operations: [{ name: 'b', type: 'batch', payload: {} }] });
      waiting.push({ id: r.all[0].id, who });
    }
    await page.goto(`${url}/ui#/queues`);
    // some work to chart, while the page samples the metrics
    for (let i = 0; i < 16; i++) {
      await apiCall(url, TOKENS.acme, 'POST', '/pop/agenda', { customerId: 'acme', title: `quick ${i}`, operations: [{ name: 'q', type: 'sample', payload: {} }] });
      await page.waitForTimeout(250 + 150 * (i % 4));
    }
    await page.waitForSelector('[data-insight=batch] .queue-depth');
    await page.waitForFunction(() => /waiting of 2/.test(document.querySelector('[data-insight=batch] .queue-depth').textContent)
      && document.querySelector('[data-insight=batch] .ready-count').textContent.trim() === '3', null, { timeout: 30000 });
    await page.click('[data-insight=batch] details[data-key="batch/waiting"] summary');
    await page.click(`[data-insight=batch] [data-explain="${waiting[4].id}"]`);
    await page.waitForFunction((id) => document.querySelector('[data-insight=batch] .explain').textContent.startsWith(`${id}: ready`), waiting[4].id);
    await page.waitForSelector('#throughput svg polyline');
    await page.waitForTimeout(2500);
    await page.screenshot({ path: join(SHOTS, 'queues.png'), fullPage: false });
    log('queues page: depth, ready per customer, explain, chart');

    // ---- the agenda list with filters and paging
    await page.goto(`${url}/ui#/agendas?customerId=globex`);
    await page.waitForSelector('#agenda-table, #no-agendas');
    const globexRows = await page.$$eval('#agenda-table tbody tr', (rs) => rs.map((r) => r.dataset.agenda));
    assert.equal(globexRows.length, 2, 'globex has two batch agendas');
    // the state filter applies within each page of the customer's listing, so follow the pager
    await page.goto(`${url}/ui#/agendas?customerId=acme&state=COMPLETE`);
    await page.waitForSelector('#agenda-table');
    const completeRows = await everyListedAgenda(page);
    assert.ok(completeRows.includes(sampleId) && completeRows.includes(slowId), `complete agendas of acme: ${sampleId} and ${slowId} among ${completeRows}`);
    assert.ok(!completeRows.includes(waiting[0].id), 'a waiting agenda is filtered out');

    // ---- what a customer sees: its own agendas, never another's
    await page.click('#signout');
    await signIn(page, TOKENS.acme);
    await page.goto(`${url}/ui#/agendas`);
    await page.waitForSelector('#agenda-table');
    const seen = await everyListedAgenda(page);
    const total = (await apiCall(url, TOKENS.acme, 'GET', '/pop/progress/agenda?bycustomerId=acme&bycount=true')).count;
    assert.ok(total > 20, `more agendas than one page (${total})`);
    assert.equal(new Set(seen).size, total, 'the pages list every agenda of acme once');
    assert.ok(seen.includes(sampleId), 'acme sees its agenda');
    const globexAgenda = waiting.find((w) => w.who === 'globex').id;
    assert.ok(!seen.includes(globexAgenda), 'acme does not see globex agendas in the list');
    await page.goto(`${url}/ui#/agenda/${globexAgenda}`);
    await page.waitForSelector('.errors');
    assert.match(await page.textContent('main'), /NotFound|not found/i, 'acme cannot open a globex agenda');
    await page.goto(`${url}/ui#/queues`);
    await page.waitForSelector('[data-insight=batch] .ready-count');
    await page.waitForFunction(() => {
      const t = document.querySelector('[data-insight=batch]').textContent;
      return !t.includes('globex');
    });
    log('acme sees only its own agendas');

    // ---- a read-only console: no actions in the page, and its API refuses changes
    const ro = await startServer(dir, ['--console', 'read-only'], 'data-ro');
    try {
      await apiCall(ro.url, TOKENS.admin, 'POST', '/pop/customer', { id: 'acme', customerId: 'acme', title: 'Acme' });
      await page.goto(`${ro.url}/ui`);
      await signIn(page, TOKENS.admin);
      assert.equal(await page.isVisible('#banner'), true, 'the read-only banner');
      assert.equal(await page.isVisible('#nav a[href="#/submit"]'), false, 'no Submit link');
      await page.goto(`${ro.url}/ui#/customers`);
      await page.waitForSelector('#customers-table tr[data-id=acme]');
      assert.equal(await page.isVisible('#new-object'), false, 'no New button');
      assert.equal(await page.isVisible('#customers-table [data-delete]'), false, 'no delete buttons');
      await page.goto(`${ro.url}/ui#/submit`);
      await page.waitForSelector('#read-only-refusal');
      // what the page would call, from the page itself: refused by the read-only API at /ui/api
      const status = await page.evaluate(async (t) => (await fetch('api/pop/customer/acme', { method: 'PUT', headers: { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json' }, body: '{"title":"changed"}' })).status, TOKENS.admin);
      assert.equal(status, 403, 'the read-only API refuses a change');
      log('read-only console: actions hidden, changes refused');
    } finally {
      ro.child.kill('SIGTERM');
    }
    assert.deepEqual(consoleErrors, [], 'no script errors in the page');
  } catch (e) {
    await page.screenshot({ path: join(SHOTS, 'failure.png') }).catch(() => {});
    console.error('page at failure:', page.url(), '\n', (await page.textContent('main').catch(() => '')).slice(0, 2000));
    console.error('script errors:', consoleErrors);
    console.error('server stderr:', server.stderr().slice(-3000));
    throw e;
  } finally {
    await browser.close();
    server.child.kill('SIGTERM');
    await new Promise((r) => { server.child.once('exit', r); setTimeout(r, 10000); });
    rmSync(dir, { recursive: true, force: true });
  }
  log('ok: the console test passed');
}

/** Puts a (large) document in the agenda editor at once, as a paste would. */
async function setEditor(page, text) {
  await page.evaluate((t) => {
    const e = document.querySelector('#agenda-json');
    e.value = t;
    e.dispatchEvent(new Event('input', { bubbles: true }));
  }, text);
}

async function signIn(page, token) {
  await page.waitForSelector('#token');
  await page.fill('#token', token);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#nav:not([hidden])');
}

async function createObject(page, kind, fields, other) {
  const url = page.url().split('#')[0];
  await page.goto(`${url}#/${kind}/new`);
  await page.waitForSelector('#object-form');
  for (const [k, v] of Object.entries(fields)) await page.fill(`#object-form input[name=${k}]`, v);
  await page.fill('#object-form textarea[name=json]', JSON.stringify(other));
  await page.click('#save');
  await page.waitForSelector(`#${kind}-table tr[data-id="${fields.id}"]`);
}

const limit = setTimeout(() => { console.error('the console test took longer than 170 s'); process.exit(1); }, 170000);
main().then(() => { clearTimeout(limit); process.exit(0); }, (e) => { console.error(e); process.exit(1); });
