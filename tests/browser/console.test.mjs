// Reception console in a real browser (Debian's chromium through playwright-core).
// Starts the real switchboard binary (SWITCHBOARD_BIN), registers a phone with SIPp,
// changes presence through the API, restarts the server, and checks the page follows.
// Screenshots go to ARTIFACTS (default: <repo>/artifacts).
import { chromium } from 'playwright-core';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const BIN = process.env.SWITCHBOARD_BIN;
assert.ok(BIN, 'SWITCHBOARD_BIN names the switchboard binary');
const ARTIFACTS = process.env.ARTIFACTS || join(repo, 'artifacts');
mkdirSync(ARTIFACTS, { recursive: true });
const data = mkdtempSync(join(tmpdir(), 'switchboard-console-'));

const freePort = () => new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
});
const httpPort = await freePort();
const sipPort = await freePort();
const base = `http://127.0.0.1:${httpPort}`;
let server = null;
let adminKey = null;

function startServer() {
  return new Promise((resolve, reject) => {
    server = spawn(BIN, ['serve', '--http', `127.0.0.1:${httpPort}`, '--sip', `127.0.0.1:${sipPort}`, '--sip-domain', '127.0.0.1'], {
      env: { ...process.env, SWITCHBOARD_DATA_DIR: data, SWITCHBOARD_LOG: 'warn', DATABASE_URL: '' /* the embedded default */ },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const timer = setTimeout(() => reject(new Error('server not ready in 30 s')), 30000);
    createInterface({ input: server.stdout }).on('line', (line) => {
      const m = line.match(/(do_live_[A-Za-z0-9]+)/);
      if (m) adminKey = m[1];
      if (line.startsWith('switchboard: ready')) { clearTimeout(timer); resolve(); }
    });
    server.on('exit', (code) => { if (code && code !== 0 && code !== 143) reject(new Error('server exited ' + code)); });
  });
}

function stopServer() {
  return new Promise((resolve) => {
    if (!server || server.exitCode !== null) return resolve();
    server.once('exit', () => resolve());
    server.kill('SIGTERM');
  });
}

async function api(method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: 'Bearer ' + adminKey, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path} → ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Registers a SIPp "phone" for an extension (tests/sipp/register.xml). */
async function registerPhone(ext) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sipp-'));
  const c = ext.sipCredentials;
  writeFileSync(join(dir, 'users.csv'),
    `SEQUENTIAL\n${c.username};${c.password};[authentication username=${c.username} password=${c.password}];${ext.number};600;${ext.number}-desk\n`);
  const run = spawnSync('sipp', [`127.0.0.1:${sipPort}`, '-sf', join(repo, 'tests/sipp/register.xml'),
    '-inf', 'users.csv', '-m', '1', '-i', '127.0.0.1', '-p', String(port), '-auth_uri', '127.0.0.1',
    '-timeout', '10s', '-timeout_error', '-nostdin'], { cwd: dir, encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(run.status, 0, 'SIPp registered: ' + run.stdout + run.stderr);
}

const step = (name) => console.log('•', name);

await startServer();
assert.ok(adminKey, 'the first start printed an admin key');
const made = {};
for (let i = 0; i < 200; i++) {
  const number = String(100 + i);
  const type = i % 50 === 49 ? 'conference' : 'user';
  made[number] = (await api('POST', '/v1/pbx/extensions', { number, name: `Person ${number}`, type })).extension;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
let failed = null;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));

  step('a bad key shows a clear error');
  await page.goto(base + '/');
  await page.fill('#key', 'do_live_thisisnotakey');
  await page.click('button[type=submit]');
  await page.waitForSelector('#signin-error:not([hidden])');
  assert.equal(await page.isVisible('#board'), false);
  assert.match(await page.textContent('#signin-error'), /not accepted/);
  await page.screenshot({ path: join(ARTIFACTS, 'console-bad-key.png') });

  step('signing in lists every extension, and keeps only a JWT');
  await page.fill('#key', adminKey);
  await page.click('button[type=submit]');
  await page.waitForSelector('#board .tile[data-number="101"]');
  assert.equal(await page.locator('#board .tile').count(), 200);
  assert.equal(await page.isVisible('#signin'), false, 'the sign-in form is gone');
  const saved = await page.evaluate(() => JSON.stringify(sessionStorage));
  assert.ok(!saved.includes(adminKey), 'the API key is not kept');
  assert.ok(saved.includes('switchboard.token'));
  await page.waitForSelector('#live[data-state="live"]');
  assert.equal(await page.getAttribute('#board .tile[data-number="101"]', 'data-status'), 'offline');
  await page.screenshot({ path: join(ARTIFACTS, 'console-board.png') });

  step('a phone registers and its tile turns available within a second');
  await registerPhone(made['101']);
  const t0 = Date.now();
  await page.waitForSelector('#board .tile[data-number="101"][data-status="available"]', { timeout: 1000 });
  console.log(`  tile updated ${Date.now() - t0} ms after SIPp finished`);
  await page.waitForFunction(() => document.querySelector('#board .tile[data-number="101"] .meta').textContent.includes('1 device'), null, { timeout: 2000 });

  step('setPresence DND through the API turns the tile dnd');
  await api('PATCH', `/v1/pbx/extensions/${made['101'].id}`, { presence: 'dnd' });
  await page.waitForSelector('#board .tile[data-number="101"][data-status="dnd"]', { timeout: 1000 });

  step('search, filters and the keyboard');
  await page.keyboard.press('/');
  await page.keyboard.type('Person 1');
  assert.ok(await page.locator('#board .tile').count() < 200);
  await page.fill('#search', '');
  await page.selectOption('#filter-type', 'conference');
  assert.equal(await page.locator('#board .tile').count(), 4);
  await page.selectOption('#filter-type', '');
  await page.focus('#board .tile[data-number="100"]');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.number), '101');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#detail:not([hidden]) h2');
  assert.match(await page.textContent('#detail h2'), /101/);
  await page.waitForSelector('#detail table');
  assert.match(await page.textContent('#detail'), /SIPp/);
  await page.screenshot({ path: join(ARTIFACTS, 'console-detail.png') });
  step('a receptionist with write scope sets away from the panel');
  await page.click('#detail button[data-presence="AWAY"]');
  await page.waitForSelector('#board .tile[data-number="101"][data-status="away"]', { timeout: 2000 });
  await page.keyboard.press('Escape');

  step('the server restarts; the page shows it is reconnecting and recovers by itself');
  await stopServer();
  await page.waitForSelector('#live[data-state="reconnecting"]', { timeout: 10000 });
  await page.screenshot({ path: join(ARTIFACTS, 'console-reconnecting.png') });
  // A change made while the page was away must show up after it resynchronises.
  await startServer();
  await api('PATCH', `/v1/pbx/extensions/${made['102'].id}`, { presence: 'dnd' });
  await page.waitForSelector('#live[data-state="live"]', { timeout: 15000 });
  await page.waitForSelector('#board .tile[data-number="102"][data-status="dnd"]', { timeout: 3000 });
  await api('PATCH', `/v1/pbx/extensions/${made['103'].id}`, { presence: 'dnd' });
  await page.waitForSelector('#board .tile[data-number="103"][data-status="dnd"]', { timeout: 1000 });
  await page.screenshot({ path: join(ARTIFACTS, 'console-after-restart.png') });

  step('no request left this host (no CDN)');
  const outside = requests.filter((u) => !u.startsWith(base) && !u.startsWith('ws://127.0.0.1'));
  assert.deepEqual(outside, []);

  step('GraphiQL at /playground loads with its subscription endpoint');
  const play = await browser.newPage();
  await play.goto(base + '/playground');
  await play.waitForSelector('.graphiql-container', { timeout: 10000 });
  assert.match(await play.content(), /graphql\/ws/);
} catch (err) {
  failed = err;
} finally {
  await browser.close();
  await stopServer();
  rmSync(data, { recursive: true, force: true });
}
if (failed) {
  console.error(failed);
  process.exit(1);
}
console.log('console: all browser checks passed');
