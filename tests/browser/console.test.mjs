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
import { createSocket } from 'node:dgram';
import { createHash, randomBytes } from 'node:crypto';
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
    `SEQUENTIAL\n${c.username};${c.password};[authentication username=${c.username} password="${c.password}"];${ext.number};600;${ext.number}-desk\n`);
  const run = spawnSync('sipp', [`127.0.0.1:${sipPort}`, '-sf', join(repo, 'tests/sipp/register.xml'),
    '-inf', 'users.csv', '-m', '1', '-i', '127.0.0.1', '-p', String(port), '-auth_uri', '127.0.0.1',
    '-timeout', '10s', '-timeout_error', '-nostdin'], { cwd: dir, encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(run.status, 0, 'SIPp registered: ' + run.stdout + run.stderr);
}

const step = (name) => console.log('•', name);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const md5 = (s) => createHash('md5').update(s).digest('hex');
const rand = () => randomBytes(6).toString('hex');

/** G.711 µ-law, for a test tone. */
function ulaw(sample) {
  const sign = sample < 0 ? 0x80 : 0;
  let v = Math.min(Math.abs(sample), 32635) + 0x84;
  let exponent = 7;
  for (let mask = 0x4000; (v & mask) === 0 && exponent > 0; exponent--, mask >>= 1);
  return ~(sign | (exponent << 4) | ((v >> (exponent + 3)) & 0x0f)) & 0xff;
}

/** A UDP socket on 127.0.0.1 with a queue of what it receives. */
async function udp() {
  const socket = createSocket('udp4');
  await new Promise((r) => socket.bind(0, '127.0.0.1', r));
  const queue = [];
  let wake = null;
  socket.on('message', (msg, from) => { queue.push({ msg, from }); if (wake) wake(); });
  const next = async (ms) => {
    const until = Date.now() + ms;
    while (!queue.length) {
      const left = until - Date.now();
      if (left <= 0) return null;
      await new Promise((r) => { wake = r; setTimeout(r, left); });
    }
    return queue.shift();
  };
  return { socket, port: socket.address().port, next, send: (text, port) => socket.send(Buffer.from(text), port, '127.0.0.1') };
}

/**
 * A caller leaving a voicemail the way a phone does: INVITE (answering the 407 with an
 * MD5 digest), ACK, waits out the greeting, speaks `seconds` of tone as PCMU, BYE.
 */
/** Calls conference room `room`, runs `whileIn` while in it, then hangs up. */
async function joinRoom(caller, room, whileIn) {
  await leaveVoicemail(caller, room, 0, whileIn);
}

async function leaveVoicemail(caller, dialled, seconds, whileInCall = null) {
  const sip = await udp();
  const rtp = await udp();
  const creds = caller.sipCredentials;
  const callId = rand() + '@console-test';
  const tag = rand();
  const target = `sip:${dialled}@127.0.0.1`;
  const sdp = `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${rtp.port} RTP/AVP 0\r\n`;
  const header = (msg, name) => (msg.match(new RegExp(`^${name}: (.*)$`, 'mi')) || [])[1];
  const finalResponse = async () => {
    for (;;) {
      const got = await sip.next(5000);
      assert.ok(got, 'a SIP response within 5 s');
      const text = got.msg.toString();
      const status = Number(text.split(' ')[1]);
      if (status >= 200) return { text, status };
    }
  };
  const invite = (cseq, branch, auth) => `INVITE ${target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${sip.port};branch=${branch};rport\r\n`
    + `From: <sip:${caller.number}@127.0.0.1>;tag=${tag}\r\nTo: <${target}>\r\nCall-ID: ${callId}\r\nCSeq: ${cseq} INVITE\r\n`
    + `Contact: <sip:${caller.number}@127.0.0.1:${sip.port}>\r\nMax-Forwards: 70\r\n${auth}`
    + `Content-Type: application/sdp\r\nContent-Length: ${sdp.length}\r\n\r\n${sdp}`;
  const b1 = 'z9hG4bK-' + rand();
  sip.send(invite(1, b1, ''), sipPort);
  const challenge = await finalResponse();
  assert.equal(challenge.status, 407, challenge.text);
  sip.send(`ACK ${target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${sip.port};branch=${b1};rport\r\nFrom: <sip:${caller.number}@127.0.0.1>;tag=${tag}\r\n`
    + `To: ${header(challenge.text, 'To')}\r\nCall-ID: ${callId}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n`, sipPort);
  const md5Challenge = challenge.text.split('\r\n').find((l) => l.startsWith('Proxy-Authenticate:') && /algorithm=MD5/.test(l));
  const realm = md5Challenge.match(/realm="([^"]*)"/)[1];
  const nonce = md5Challenge.match(/nonce="([^"]*)"/)[1];
  const cnonce = rand();
  const response = md5([md5(`${creds.username}:${realm}:${creds.password}`), nonce, '00000001', cnonce, 'auth', md5(`INVITE:${target}`)].join(':'));
  const auth = `Proxy-Authorization: Digest username="${creds.username}", realm="${realm}", nonce="${nonce}", uri="${target}", `
    + `response="${response}", algorithm=MD5, cnonce="${cnonce}", qop=auth, nc=00000001\r\n`;
  sip.send(invite(2, 'z9hG4bK-' + rand(), auth), sipPort);
  const ok = await finalResponse();
  assert.equal(ok.status, 200, ok.text);
  const to = header(ok.text, 'To');
  const contact = header(ok.text, 'Contact').match(/<([^>]*)>/)[1];
  const media = Number(ok.text.match(/m=audio (\d+)/)[1]);
  const inDialog = (method, cseq) => `${method} ${contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${sip.port};branch=z9hG4bK-${rand()};rport\r\n`
    + `From: <sip:${caller.number}@127.0.0.1>;tag=${tag}\r\nTo: ${to}\r\nCall-ID: ${callId}\r\nCSeq: ${cseq} ${method}\r\n`
    + `Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n`;
  sip.send(inDialog('ACK', 2), sipPort);
  if (whileInCall) {
    await whileInCall();
    seconds = 0;
  } else {
    // The greeting plays; once it has stopped for 300 ms, the beep is over.
    assert.ok(await rtp.next(5000), 'the greeting arrives over RTP');
    while (await rtp.next(300));
  }
  const ssrc = randomBytes(4);
  for (let n = 0; n < seconds * 50; n++) {
    const packet = Buffer.alloc(12 + 160);
    packet[0] = 0x80;
    packet.writeUInt16BE(n, 2);
    packet.writeUInt32BE(n * 160, 4);
    ssrc.copy(packet, 8);
    for (let i = 0; i < 160; i++) packet[12 + i] = ulaw(Math.round(8000 * Math.sin(2 * Math.PI * 440 * (n * 160 + i) / 8000)));
    rtp.socket.send(packet, media, '127.0.0.1');
    await sleep(20);
  }
  sip.send(inDialog('BYE', 3), sipPort);
  const bye = await finalResponse();
  assert.equal(bye.status, 200, bye.text);
  sip.socket.close();
  rtp.socket.close();
}

/** An 8 kHz mono 16-bit WAV of silence. */
function silentWav(seconds) {
  const samples = Math.round(seconds * 8000);
  const wav = Buffer.alloc(44 + samples * 2);
  wav.write('RIFF', 0); wav.writeUInt32LE(36 + samples * 2, 4); wav.write('WAVEfmt ', 8);
  wav.writeUInt32LE(16, 16); wav.writeUInt16LE(1, 20); wav.writeUInt16LE(1, 22); wav.writeUInt32LE(8000, 24);
  wav.writeUInt32LE(16000, 28); wav.writeUInt16LE(2, 32); wav.writeUInt16LE(16, 34); wav.write('data', 36);
  wav.writeUInt32LE(samples * 2, 40);
  return wav;
}

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

  step('conference tiles show their room: empty and available, then busy with its occupancy');
  const room = '#board .tile[data-number="149"]';
  await page.waitForSelector(`${room}[data-occupancy="0"][data-status="available"]`, { timeout: 5000 })
    .catch(async (err) => {
      // Say what the tile showed instead (a CI run under load once timed out here).
      const seen = await page.evaluate((sel) => {
        const li = document.querySelector(sel);
        return li ? JSON.stringify({ ...li.dataset, meta: li.querySelector('.meta').textContent }) : 'no tile';
      }, room);
      throw new Error(`${err.message}\nthe tile showed ${seen}`);
    });
  assert.match(await page.textContent(`${room} .meta`), /conference · empty room/);
  await joinRoom(made['102'], '149', async () => {
    await page.waitForSelector(`${room}[data-occupancy="1"][data-status="busy"]`, { timeout: 3000 });
    assert.match(await page.textContent(`${room} .meta`), /1 in room/);
  });
  await page.waitForSelector(`${room}[data-occupancy="0"][data-status="available"]`, { timeout: 3000 });

  step('a phone registers and its tile turns available within a second');
  await registerPhone(made['101']);
  const t0 = Date.now();
  await page.waitForSelector('#board .tile[data-number="101"][data-status="available"]', { timeout: 1000 });
  console.log(`  tile updated ${Date.now() - t0} ms after SIPp finished`);
  await page.waitForFunction(() => document.querySelector('#board .tile[data-number="101"] .meta').textContent.includes('1 device'), null, { timeout: 2000 });

  step('setPresence DND through the API turns the tile dnd');
  await api('PATCH', `/v1/pbx/extensions/${made['101'].id}`, { presence: 'dnd' });
  await page.waitForSelector('#board .tile[data-number="101"][data-status="dnd"]', { timeout: 1000 });

  step('a caller leaves 101 a voicemail; its tile shows it until it is heard');
  const greeting = await fetch(`${base}/v1/pbx/voicemail/mailboxes/vm_101/greeting`, {
    method: 'PUT', headers: { Authorization: 'Bearer ' + adminKey, 'Content-Type': 'audio/wav' }, body: silentWav(0.3),
  });
  assert.equal(greeting.status, 200, await greeting.text());
  await leaveVoicemail(made['102'], '101', 1.5);
  await page.waitForSelector('#board .tile[data-number="101"][data-voicemail="1"]', { timeout: 5000 });
  assert.match(await page.textContent('#board .tile[data-number="101"] .vm'), /✉ 1/);
  assert.match(await page.getAttribute('#board .tile[data-number="101"]', 'aria-label'), /1 new voicemail/);
  await page.screenshot({ path: join(ARTIFACTS, 'console-voicemail.png') });
  const { messages } = await api('GET', '/v1/pbx/voicemail/mailboxes/vm_101/messages');
  assert.equal(messages.length, 1);
  await api('PATCH', `/v1/pbx/voicemail/mailboxes/vm_101/messages/${messages[0].id}`, { heard: true });
  await page.waitForSelector('#board .tile[data-number="101"][data-voicemail="0"]', { timeout: 2000 });
  assert.equal(await page.textContent('#board .tile[data-number="101"] .vm'), '');

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
  const introspection = (status) => play.waitForResponse((r) => r.url() === base + '/graphql'
    && r.status() === status && (r.request().postData() || '').includes('__schema'), { timeout: 10000 });
  // Without a key /graphql answers 401, introspection included.
  const refused = introspection(401);
  await play.goto(base + '/playground');
  await play.waitForSelector('.graphiql-container', { timeout: 10000 });
  assert.match(await play.content(), /graphql\/ws/);
  await refused;

  step('GraphiQL reads the schema once a key is entered');
  const introspected = introspection(200);
  await play.fill('#key', adminKey);
  await play.dispatchEvent('#key', 'change');
  const schema = await (await introspected).json();
  assert.equal(schema.errors, undefined, JSON.stringify(schema.errors));
  assert.equal(schema.data.__schema.queryType.name, 'QueryRoot');
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
