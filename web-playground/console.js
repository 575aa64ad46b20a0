// Switchboard reception console: one page, no build step, no CDN.
// Signs in with an API key (exchanged for a JWT kept in sessionStorage), shows every
// extension, and keeps it live over one GraphQL websocket (graphql-transport-ws).
'use strict';

const $ = (sel) => document.querySelector(sel);
const STATUS_ICON = { available: '●', busy: '☎', away: '◐', dnd: '⊘', offline: '○' };
const store = sessionStorage;
const state = {
  token: store.getItem('switchboard.token'),
  expiresAt: Number(store.getItem('switchboard.expiresAt') || 0),
  scopes: [],
  voicemail: new Map(), // extension id → new messages
  extensions: new Map(), // id -> extension
  calls: new Map(), // call id -> call
  rooms: new Map(), // conference extension id -> Map(participant id -> { talking, muted })
  selected: null,
  ws: null,
  renewTimer: null,
  connectedOnce: false,
};

// ---------------------------------------------------------------- auth

function decodeScopes(token) {
  try {
    const payload = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return String(payload.scope || '').split(',');
  } catch (_) {
    return [];
  }
}

const can = (scope) => state.scopes.includes(scope);

async function exchange(credential) {
  const res = await fetch('/v1/auth/token', {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + credential },
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(body.message || ('HTTP ' + res.status));
    err.code = body.error || String(res.status);
    throw err;
  }
  return body;
}

function keepToken({ token, expiresAt }) {
  state.token = token;
  state.expiresAt = Date.parse(expiresAt);
  state.scopes = decodeScopes(token);
  store.setItem('switchboard.token', token);
  store.setItem('switchboard.expiresAt', String(state.expiresAt));
  clearTimeout(state.renewTimer);
  // Renew when 80% of the lifetime is gone (at least 10 s before expiry).
  const wait = Math.max(1000, Math.min((state.expiresAt - Date.now()) * 0.8, state.expiresAt - Date.now() - 10000));
  state.renewTimer = setTimeout(renew, wait);
}

async function renew() {
  try {
    keepToken(await exchange(state.token));
  } catch (err) {
    if (err.code === 'unauthorized') signOut('Your session ended; sign in again.');
    else state.renewTimer = setTimeout(renew, 5000);
  }
}

function signOut(message) {
  clearTimeout(state.renewTimer);
  store.removeItem('switchboard.token');
  store.removeItem('switchboard.expiresAt');
  state.token = null;
  if (state.ws) state.ws.dispose();
  state.ws = null;
  $('#console').hidden = true;
  $('#live').hidden = true;
  $('#signout').hidden = true;
  $('#signin').hidden = false;
  const box = $('#signin-error');
  box.hidden = !message;
  box.textContent = message || '';
  $('#key').focus();
}

$('#signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const key = $('#key').value.trim();
  const box = $('#signin-error');
  box.hidden = true;
  try {
    keepToken(await exchange(key));
    $('#key').value = '';
    start();
  } catch (err) {
    box.textContent = err.code === 'unauthorized'
      ? 'That API key was not accepted: it is unknown, revoked or mistyped.'
      : 'Could not sign in: ' + err.message;
    box.hidden = false;
  }
});
$('#signout').addEventListener('click', () => signOut());

// ---------------------------------------------------------------- GraphQL

async function gql(query, variables = {}) {
  const res = await fetch('/graphql', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + state.token },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) {
    signOut('Your session ended; sign in again.');
    throw new Error('unauthorized');
  }
  if (body.errors && body.errors.length) throw new Error(body.errors[0].message);
  return body.data;
}

const EXT_FIELDS = 'id number name type status registeredDevices';
const CALL_FIELDS = 'id state answeredAt startedAt caller { extensionId number name } callee { extensionId number name }';

async function loadBoard() {
  const mailboxes = can('pbx:voicemail:read') ? 'mailboxes { extensionId newMessages }' : '';
  const data = await gql(`{ extensions { ${EXT_FIELDS} } calls(active: true, first: 500) { nodes { ${CALL_FIELDS} } } ${mailboxes} }`);
  state.extensions = new Map(data.extensions.map((e) => [e.id, e]));
  state.calls = new Map(data.calls.nodes.map((c) => [c.id, c]));
  state.voicemail = new Map((data.mailboxes || []).map((m) => [m.extensionId, m.newMessages]));
  render();
}

async function refreshExtension(id) {
  const data = await gql(`query($id: ID!) { extension(id: $id) { ${EXT_FIELDS} } }`, { id });
  if (data.extension) state.extensions.set(id, data.extension);
  else state.extensions.delete(id);
  render();
}

// ---------------------------------------------------------------- live

function setLive(mode) {
  const box = $('#live');
  box.hidden = false;
  box.classList.toggle('reconnecting', mode !== 'live');
  $('#live-text').textContent = mode === 'live' ? 'live' : 'reconnecting…';
  box.dataset.state = mode;
}

function connect() {
  state.connectedOnce = false;
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/graphql/ws';
  const client = graphqlWs.createClient({
    url,
    connectionParams: () => ({ authorization: 'Bearer ' + state.token }),
    keepAlive: 5000,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    retryWait: (retries) => new Promise((r) => setTimeout(r, Math.min(500 * 2 ** retries, 8000) + Math.random() * 300)),
    on: {
      connecting: () => { if (state.connectedOnce) setLive('reconnecting'); },
      connected: () => {
        // Whatever happened while we were away is in the fresh snapshot.
        setLive('live');
        if (state.connectedOnce) loadBoard().catch(() => {});
        state.connectedOnce = true;
      },
      closed: () => { if (state.connectedOnce) setLive('reconnecting'); },
    },
  });
  const subscribe = (query, onData) => client.subscribe({ query }, {
    next: (msg) => { if (msg.data) onData(msg.data); },
    error: () => {},
    complete: () => {},
  });
  subscribe('subscription { presenceChanged { extension { id } status } }', ({ presenceChanged: p }) => {
    const ext = state.extensions.get(p.extension.id);
    if (ext && ext.status !== p.status.toLowerCase()) {
      ext.status = p.status.toLowerCase();
      render();
    }
  });
  subscribe(`subscription { extensionChanged { kind extension { ${EXT_FIELDS} } } }`, ({ extensionChanged: e }) => {
    if (e.kind === 'DELETED') state.extensions.delete(e.extension.id);
    else state.extensions.set(e.extension.id, lower(e.extension));
    render();
  });
  subscribe(`subscription { callEvents { kind call { ${CALL_FIELDS} } } }`, ({ callEvents: e }) => {
    if (e.kind === 'ENDED') state.calls.delete(e.call.id);
    else state.calls.set(e.call.id, e.call);
    render();
  });
  if (can('pbx:voicemail:read')) {
    subscribe('subscription { voicemailEvents { extension { id } newMessages } }', ({ voicemailEvents: v }) => {
      state.voicemail.set(v.extension.id, v.newMessages);
      render();
    });
  }
  if (can('pbx:conferences:read')) {
    // Opens with a SNAPSHOT of every room (and a RESYNC after falling behind): each
    // replaces what we knew of that room; the other kinds move one participant.
    subscribe(`subscription { conferenceEvents { kind conference { id } participant { id talking muted }
        participants { id talking muted } } }`, ({ conferenceEvents: c }) => {
      let room = state.rooms.get(c.conference.id);
      if (c.kind === 'SNAPSHOT' || c.kind === 'RESYNC' || !room) {
        room = new Map((c.participants || []).map((p) => [p.id, p]));
        state.rooms.set(c.conference.id, room);
      }
      if (c.kind === 'LEFT') room.delete(c.participant.id);
      else if (c.participant) room.set(c.participant.id, c.participant);
      render();
    });
  }
  if (can('pbx:phones:read')) {
    subscribe('subscription { deviceChanged { kind device { extensionNumber } } }', ({ deviceChanged: d }) => {
      const ext = [...state.extensions.values()].find((x) => x.number === d.device.extensionNumber);
      if (ext) refreshExtension(ext.id).catch(() => {});
    });
  }
  return client;
}

const lower = (e) => ({ ...e, status: String(e.status).toLowerCase(), type: String(e.type).toLowerCase() });

// ---------------------------------------------------------------- board

function callOf(ext) {
  for (const c of state.calls.values()) {
    if (c.caller.extensionId === ext.id) return { call: c, other: c.callee };
    if (c.callee.extensionId === ext.id) return { call: c, other: c.caller };
  }
  return null;
}

function duration(since) {
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function visible() {
  const q = $('#search').value.trim().toLowerCase();
  const st = $('#filter-status').value;
  const ty = $('#filter-type').value;
  return [...state.extensions.values()]
    .map(lower)
    .filter((e) => (!q || e.number.includes(q) || e.name.toLowerCase().includes(q))
      && (!st || e.status === st) && (!ty || e.type === ty))
    .sort((a, b) => a.number.localeCompare(b.number, undefined, { numeric: true }));
}

/** "3 in room · 1 talking" for a conference tile (null without the scope to know). */
function occupancy(e) {
  if (e.type !== 'conference' || !can('pbx:conferences:read')) return null;
  const people = [...(state.rooms.get(e.id) || new Map()).values()];
  if (!people.length) return 'empty room';
  const talking = people.filter((p) => p.talking).length;
  return `${people.length} in room` + (talking ? ` · ${talking} talking` : '');
}

function tileFor(e) {
  const li = document.createElement('li');
  li.className = 'tile';
  li.tabIndex = 0;
  li.dataset.id = e.id;
  li.setAttribute('role', 'button');
  li.innerHTML = '<div class="top"><span class="number"></span><span class="vm"></span><span class="status"></span></div>'
    + '<div class="name"></div><div class="meta"></div><div class="call"></div>';
  li.addEventListener('click', () => select(e.id));
  li.addEventListener('keydown', onTileKey);
  return li;
}

function render() {
  const board = $('#board');
  const list = visible();
  const existing = new Map([...board.children].map((li) => [li.dataset.id, li]));
  let before = board.firstChild;
  for (const e of list) {
    let li = existing.get(e.id);
    existing.delete(e.id);
    if (!li) li = tileFor(e);
    li.className = 'tile ' + e.status;
    li.dataset.number = e.number;
    li.dataset.status = e.status;
    li.setAttribute('aria-selected', String(state.selected === e.id));
    const room = occupancy(e);
    const active = e.type === 'conference' ? null : callOf(e);
    const waiting = state.voicemail.get(e.id) || 0;
    const label = `${e.number} ${e.name}, ${e.status}` + (active ? `, on a call with ${active.other.name || active.other.number}` : '')
      + (waiting ? `, ${waiting} new voicemail${waiting === 1 ? '' : 's'}` : '')
      + (room ? `, ${room}` : '');
    li.setAttribute('aria-label', label);
    li.querySelector('.number').textContent = e.number;
    li.querySelector('.status').textContent = `${STATUS_ICON[e.status] || ''} ${e.status}`;
    li.querySelector('.name').textContent = e.name;
    const vm = li.querySelector('.vm');
    vm.textContent = waiting ? `✉ ${waiting}` : '';
    vm.title = waiting ? `${waiting} new voicemail${waiting === 1 ? '' : 's'}` : '';
    li.dataset.voicemail = String(waiting);
    li.querySelector('.meta').textContent = room
      ? `${e.type} · ${room}`
      : `${e.type} · ${e.registeredDevices} device${e.registeredDevices === 1 ? '' : 's'}`;
    li.dataset.occupancy = room ? String((state.rooms.get(e.id) || new Map()).size) : '';
    li.querySelector('.call').textContent = active
      ? `${active.call.state === 'RINGING' || active.call.state === 'ringing' ? 'ringing' : '☎'} ${active.other.name || active.other.number}`
        + (active.call.answeredAt ? ` · ${duration(active.call.answeredAt)}` : '')
      : '';
    li.querySelector('.call').dataset.since = active && active.call.answeredAt ? active.call.answeredAt : '';
    if (li !== before) board.insertBefore(li, before);
    before = li.nextSibling;
  }
  for (const li of existing.values()) li.remove();
  const all = [...state.extensions.values()].map(lower);
  const by = (s) => all.filter((e) => e.status === s).length;
  $('#counts').textContent = `${list.length} of ${all.length} · ${by('available')} available · ${by('busy')} busy · ${by('offline')} offline`;
  if (state.selected && !state.extensions.has(state.selected)) closeDetail();
}

setInterval(() => {
  for (const el of document.querySelectorAll('.tile .call')) {
    if (el.dataset.since) el.textContent = el.textContent.replace(/· \d+:\d\d$/, '· ' + duration(el.dataset.since));
  }
}, 1000);

function onTileKey(event) {
  const tiles = [...document.querySelectorAll('#board .tile')];
  const i = tiles.indexOf(event.currentTarget);
  const columns = Math.max(1, tiles.filter((t) => t.offsetTop === tiles[0].offsetTop).length);
  const move = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns }[event.key];
  if (move !== undefined) {
    event.preventDefault();
    const next = tiles[Math.min(tiles.length - 1, Math.max(0, i + move))];
    if (next) next.focus();
  } else if (event.key === 'Enter' || event.key === ' ') {
    event.preventDefault();
    select(event.currentTarget.dataset.id);
  }
}

document.addEventListener('keydown', (event) => {
  if (event.key === '/' && document.activeElement !== $('#search') && !$('#console').hidden) {
    event.preventDefault();
    $('#search').focus();
  } else if (event.key === 'Escape') {
    closeDetail();
  }
});
for (const id of ['#search', '#filter-status', '#filter-type']) $(id).addEventListener('input', render);

// ---------------------------------------------------------------- detail

function closeDetail() {
  state.selected = null;
  $('#detail').hidden = true;
  render();
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text == null ? '—' : text;
  return td;
}

function table(headers, rows) {
  const t = document.createElement('table');
  const head = t.insertRow();
  for (const h of headers) {
    const th = document.createElement('th');
    th.textContent = h;
    head.appendChild(th);
  }
  for (const r of rows) {
    const tr = t.insertRow();
    for (const v of r) tr.appendChild(cell(v));
  }
  return t;
}

async function select(id) {
  state.selected = id;
  render();
  const panel = $('#detail');
  panel.hidden = false;
  const devices = can('pbx:phones:read')
    ? 'devices { deviceType manufacturer model ipAddress transport registered lastRegistered }' : '';
  let data;
  try {
    data = await gql(`query($id: ID!) { extension(id: $id) { ${EXT_FIELDS} ${devices} }
      calls(extension: $id, first: 10) { nodes { ${CALL_FIELDS} disposition endedAt } } }`, { id });
  } catch (err) {
    panel.textContent = 'Could not load: ' + err.message;
    return;
  }
  if (state.selected !== id || !data.extension) return;
  const e = lower(data.extension);
  panel.replaceChildren();
  const h = document.createElement('h2');
  h.textContent = `${e.number} · ${e.name}`;
  const p = document.createElement('p');
  p.textContent = `${STATUS_ICON[e.status]} ${e.status} · ${e.type} · ${e.registeredDevices} live device(s)`;
  panel.append(h, p);
  if (can('pbx:extensions:write')) {
    const actions = document.createElement('div');
    actions.className = 'actions';
    for (const [label, value] of [['Available', 'AVAILABLE'], ['Away', 'AWAY'], ['Do not disturb', 'DND']]) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.dataset.presence = value;
      b.addEventListener('click', async () => {
        await gql('mutation($id: ID!, $s: PresenceSetting!) { setPresence(id: $id, status: $s) { id status } }', { id, s: value });
        select(id);
      });
      actions.appendChild(b);
    }
    panel.appendChild(actions);
  }
  if (data.extension.devices) {
    const h3 = document.createElement('h3');
    h3.textContent = 'Devices';
    panel.append(h3, table(['Type', 'Maker / model', 'IP', 'Last registered', 'Live'],
      data.extension.devices.map((d) => [d.deviceType.toLowerCase(), [d.manufacturer, d.model].filter(Boolean).join(' ') || '—',
        d.ipAddress, new Date(d.lastRegistered).toLocaleString(), d.registered ? 'yes' : 'no'])));
  }
  const h3 = document.createElement('h3');
  h3.textContent = 'Recent calls';
  panel.append(h3, table(['With', 'Started', 'Outcome'], data.calls.nodes.map((c) => {
    const out = c.caller.extensionId === id;
    const other = out ? c.callee : c.caller;
    return [`${out ? '→' : '←'} ${other.name || other.number}`, new Date(c.startedAt).toLocaleString(),
      (c.disposition || c.state).toLowerCase()];
  })));
}

// ---------------------------------------------------------------- start

async function start() {
  state.scopes = decodeScopes(state.token);
  $('#signin').hidden = true;
  $('#console').hidden = false;
  $('#signout').hidden = false;
  setLive('connecting');
  try {
    await loadBoard();
  } catch (err) {
    if (err.message !== 'unauthorized') $('#counts').textContent = 'Could not load the board: ' + err.message;
    return;
  }
  if (state.ws) state.ws.dispose();
  state.ws = connect();
}

if (state.token && state.expiresAt > Date.now() + 5000) {
  keepToken({ token: state.token, expiresAt: new Date(state.expiresAt).toISOString() });
  start();
} else {
  signOut();
}
