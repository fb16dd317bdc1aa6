'use strict';
// The Levee dashboard's pages, rendered from the JSON of /api/ and kept
// live by the server-sent events of /api/stream.

const SVGNS = 'http://www.w3.org/2000/svg';

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function getJSON(path) {
  const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
  if (r.status === 401) { location.href = '/login'; throw new Error('not logged in'); }
  if (!r.ok) throw new Error(path + ': ' + r.status + ' ' + (await r.text()));
  return r.json();
}

// Numbers with units, SI prefixes.
function si(v, unit) {
  if (v === null || v === undefined) return '—';
  const p = ['', 'k', 'M', 'G', 'T', 'P', 'E'];
  let i = 0;
  while (i < p.length - 1 && Math.abs(v) >= 999.5) { v /= 1000; i++; }
  const digits = i === 0 ? 0 : (Math.abs(v) < 9.995 ? 2 : Math.abs(v) < 99.95 ? 1 : 0);
  return v.toFixed(digits) + ' ' + p[i] + unit;
}

// niceCeil is the smallest of 1, 2, 2.5, 5 times a power of ten at or
// above v: the top of a plot's scale.
function niceCeil(v) {
  if (v <= 0) return 1;
  const e = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * e >= v) return m * e;
  }
  return 10 * e;
}

const protocolNames = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP' };
function protocols(list) {
  return list.map((n) => (protocolNames[n] ? protocolNames[n] + ' (' + n + ')' : String(n))).join(', ');
}

const bps = (v) => si(v, 'bit/s');
const pps = (v) => si(v, 'pkt/s');
const bytes = (v) => si(v, 'B');
const pkts = (v) => si(v, 'pkt');

function duration(s) {
  if (s < 0) return 'indefinite';
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h > 0) return h + ' h ' + m + ' min';
  if (m > 0) return m + ' min ' + sec + ' s';
  return sec + ' s';
}

function utc(t) {
  const d = new Date(t);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

function statusBadge(code, name) {
  return el('span', { class: 'badge status st-' + code, title: name }, code + ' ' + name);
}

function detailHref(m) {
  return '/mitigation?cuid=' + encodeURIComponent(m.cuid) + '&mid=' + m.mid;
}

function keyOf(m) { return m.cuid + '/' + m.mid; }

// every runs fn every ms milliseconds: the page's one timer, replaced when
// the page is loaded again.
let timer = null;
function every(fn, ms) {
  clearInterval(timer);
  timer = setInterval(fn, ms);
}

function main(...children) {
  const mainEl = document.getElementById('main');
  mainEl.replaceChildren(...children);
  return mainEl;
}

// Live updates: one EventSource for the page, handlers by event name.
// After the stream was lost, the page is loaded again from the API: what
// changed meanwhile was not streamed.
const live = {};
function connectLive(reload) {
  const badge = document.getElementById('live');
  const es = new EventSource('/api/stream');
  let lost = false;
  es.onopen = () => {
    badge.textContent = 'live';
    badge.className = 'live on';
    if (lost) { lost = false; reload(); }
  };
  es.onerror = () => { lost = true; badge.textContent = 'disconnected: retrying'; badge.className = 'live off'; };
  for (const name of ['mitigations', 'samples', 'log']) {
    es.addEventListener(name, (ev) => {
      const data = JSON.parse(ev.data);
      if (live[name]) live[name](data);
    });
  }
}

// ---- Overview ----

async function overviewPage() {
  const render = async () => {
    const o = await getJSON('/api/overview');
    const cards = el('div', { class: 'cards' });
    const sess = el('div', { class: 'card', id: 'sessions' }, el('div', { class: 'label' }, 'Signal-channel sessions'));
    if (o.sessions) {
      sess.append(el('div', { class: 'big' }, o.sessions.sessions), el('div', { class: 'label' }, o.sessions.clients + ' clients'));
    } else {
      sess.append(el('div', { class: 'muted' }, 'not counted'));
    }
    const mit = el('div', { class: 'card', id: 'active' }, el('div', { class: 'label' }, 'Active mitigations'),
      el('div', { class: 'big' }, o.mitigations.active),
      el('div', { class: 'label' }, o.mitigations.total + ' requests in all, ' + o.mitigations.measured + ' measured'));
    const by = el('div', { class: 'bystatus' });
    for (const s of o.mitigations.by_status) {
      by.append(el('div', {}, statusBadge(s.status, s.name), ' × ' + s.count));
    }
    mit.append(by);
    const bgp = el('div', { class: 'card', id: 'bgp' }, el('div', { class: 'label' }, 'BGP neighbors established'));
    if (o.bgp) {
      const cls = o.bgp.established === o.bgp.neighbors ? 'up' : 'down';
      bgp.append(el('div', { class: 'big' }, el('span', { class: 'badge ' + cls }, o.bgp.established + ' / ' + o.bgp.neighbors)),
        el('div', { class: 'label' }, o.bgp.routes + ' routes announced (sum over neighbors)'));
    } else {
      bgp.append(el('div', { class: 'muted' }, 'no BGP speaker configured'));
    }
    cards.append(sess, mit, bgp);
    const scrub = el('section', { id: 'scrubbers' }, el('h2', {}, 'Scrubbing nodes'));
    if (o.scrubbers === null) {
      scrub.append(el('p', { class: 'muted' }, 'no scrubbing backend configured'));
    } else {
      const t = el('table', {}, el('tr', {}, el('th', {}, 'Node'), el('th', {}, 'State'),
        el('th', { class: 'num' }, 'Offered'), el('th', { class: 'num' }, 'Offered'), el('th', { class: 'num' }, 'Capacity')));
      for (const n of o.scrubbers) {
        const cap = (n.capacity_bps ? bps(n.capacity_bps) : 'no limit') + ', ' + (n.capacity_pps ? pps(n.capacity_pps) : 'no limit');
        t.append(el('tr', {}, el('td', {}, n.name, el('div', { class: 'muted' }, n.url)),
          el('td', {}, el('span', { class: 'badge ' + (n.up ? 'up' : 'down') }, n.up ? 'up' : 'down'),
            n.over_capacity ? el('span', { class: 'badge st-4' }, 'over capacity') : null,
            n.error ? el('div', { class: 'error' }, n.error) : null),
          el('td', { class: 'num' }, bps(n.offered_bps)), el('td', { class: 'num' }, pps(n.offered_pps)), el('td', { class: 'num' }, cap)));
      }
      scrub.append(t);
    }
    main(el('h1', {}, 'Overview'), cards, scrub, el('p', { class: 'muted' }, 'as of ' + utc(o.now)));
  };
  await render();
  let pending = false;
  live.mitigations = () => {
    if (pending) return;
    pending = true;
    setTimeout(() => { pending = false; render(); }, 500);
  };
  every(render, 10000);
}

// ---- Mitigation list ----

function rateCells(m) {
  if (!m.counters) {
    return [el('td', { class: 'num notmeasured bps', colspan: 3 }, 'not measured')];
  }
  return [el('td', { class: 'num bps' }, bps(m.counters.bps_dropped)), el('td', { class: 'num pps' }, pps(m.counters.pps_dropped)),
    el('td', { class: 'num total' }, bytes(m.counters.bytes_dropped) + ', ' + pkts(m.counters.pkts_dropped))];
}

function mitigationRow(m) {
  return el('tr', { 'data-key': keyOf(m), 'data-mid': m.mid, 'data-status': m.status },
    el('td', { class: 'mid' }, el('a', { href: detailHref(m) }, m.mid)),
    el('td', {}, m.domain, el('div', { class: 'muted' }, el('code', {}, m.cuid))),
    el('td', {}, statusBadge(m.status, m.status_name)),
    el('td', { class: 'targets' }, m.targets.join(', ') + (m.ports ? ' ports ' + m.ports.join(',') : '')),
    ...rateCells(m),
    el('td', { class: 'num' }, m.active ? duration(m.remaining) : '—'));
}

async function mitigationsPage() {
  const body = el('tbody', { id: 'mitigation-rows' });
  const table = el('table', { id: 'mitigations' },
    el('thead', {}, el('tr', {}, el('th', {}, 'mid'), el('th', {}, 'Client'), el('th', {}, 'Status'), el('th', {}, 'Targets'),
      el('th', { class: 'num' }, 'Dropped bit rate'), el('th', { class: 'num' }, 'Dropped packet rate'), el('th', { class: 'num' }, 'Dropped in all'),
      el('th', { class: 'num' }, 'Lifetime left'))), body);
  const empty = el('p', { class: 'muted', id: 'none' }, 'No mitigation requests.');
  const l = await getJSON('/api/mitigations');
  const rows = new Map();
  const byKey = new Map();
  const upsert = (m, flash) => {
    const row = mitigationRow(m);
    const old = rows.get(keyOf(m));
    if (old) old.replaceWith(row); else body.append(row);
    rows.set(keyOf(m), row);
    byKey.set(keyOf(m), m);
    if (flash) row.classList.add('flash');
    empty.hidden = rows.size > 0;
  };
  for (const m of l.mitigations) upsert(m, false);
  main(el('h1', {}, 'Mitigations'), empty, table);
  live.mitigations = (items) => { for (const m of items) upsert(m, true); };
  // New counter readings: the rates and totals of the rows measured.
  live.samples = (items) => {
    for (const s of items) {
      const m = byKey.get(keyOf(s));
      if (!m) continue;
      m.counters = { bps_dropped: s.bps, pps_dropped: s.pps, bytes_dropped: s.bytes, pkts_dropped: s.pkts };
      upsert(m, false);
    }
  };
}

// ---- Mitigation detail ----

// plot draws the measured samples of one quantity over the window: a path
// through the samples, broken where samples are missing; nothing where
// nothing was measured.
function plot(id, title, samples, field, fmt, windowSec, everySec, now) {
  const W = 640, H = 220, L = 78, R = 12, T = 14, B = 28;
  const box = el('div', { class: 'plot', id: id }, el('h3', {}, title));
  const s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': title });
  const t0 = now - windowSec * 1000;
  const pts = samples.filter((p) => p.t >= t0);
  let max = 0;
  for (const p of pts) max = Math.max(max, p[field]);
  const top = niceCeil(max * 1.05);
  const x = (t) => L + ((t - t0) / (windowSec * 1000)) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  s.append(svg('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }),
    svg('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
  for (const f of [0.5, 1]) {
    s.append(svg('line', { class: 'grid', x1: L, y1: y(top * f), x2: W - R, y2: y(top * f) }),
      svg('text', { x: L - 6, y: y(top * f) + 4, 'text-anchor': 'end' }, max > 0 ? fmt(top * f) : ''));
  }
  s.append(svg('text', { x: L - 6, y: H - B + 4, 'text-anchor': 'end' }, fmt(0)));
  for (const m of [15, 10, 5, 0]) {
    s.append(svg('text', { x: x(now - m * 60000), y: H - 8, 'text-anchor': 'middle' }, m === 0 ? 'now' : '−' + m + ' min'));
  }
  let d = '';
  let prev = null;
  for (const p of pts) {
    const gap = prev === null || p.t - prev > 3 * everySec * 1000;
    d += (gap ? 'M' : 'L') + x(p.t).toFixed(1) + ' ' + y(p[field]).toFixed(1) + ' ';
    prev = p.t;
  }
  const path = svg('path', { class: 'line', d: d.trim(), 'data-points': pts.length });
  s.append(path);
  if (pts.length > 0) {
    const last = pts[pts.length - 1];
    s.append(svg('circle', { class: 'dot', cx: x(last.t), cy: y(last[field]), r: 3 }),
      svg('text', { class: 'current', x: W - R, y: T + 2, 'text-anchor': 'end' }, 'now ' + fmt(last[field])));
  }
  box.append(s);
  return box;
}

async function mitigationPage() {
  const q = new URLSearchParams(location.search);
  const api = '/api/mitigation?cuid=' + encodeURIComponent(q.get('cuid') || '') + '&mid=' + encodeURIComponent(q.get('mid') || '');
  let det;
  try {
    det = await getJSON(api);
  } catch (e) {
    main(el('h1', {}, 'Mitigation'), el('p', { class: 'error' }, String(e.message)));
    return;
  }
  const samples = det.samples.slice();
  // The plots' time axis follows the server's clock, whatever the
  // browser's says.
  const skew = det.now - Date.now();
  const draw = () => {
    const m = det.mitigation;
    const info = el('dl', { id: 'info' },
      el('dt', {}, 'Status'), el('dd', { class: 'status' }, statusBadge(m.status, m.status_name)),
      el('dt', {}, 'Client'), el('dd', {}, m.domain + ' ', el('code', {}, m.cuid)),
      el('dt', {}, 'Targets'), el('dd', { class: 'targets' }, m.targets.join(', ') || '—'),
      el('dt', {}, 'Ports'), el('dd', {}, m.ports ? m.ports.join(', ') : 'all'),
      el('dt', {}, 'Protocols'), el('dd', {}, m.protocols ? protocols(m.protocols) : 'all'),
      el('dt', {}, 'Started'), el('dd', {}, m.start ? utc(m.start) : 'not started'),
      el('dt', {}, 'Lifetime left'), el('dd', {}, m.active ? duration(m.remaining) : '—'),
      el('dt', {}, 'Attack status'), el('dd', {}, m.attack_status || 'not reported'),
      el('dt', {}, 'Dropped in all'), el('dd', { class: 'total' }, m.counters ? bytes(m.counters.bytes_dropped) + ', ' + pkts(m.counters.pkts_dropped)
        : el('span', { class: 'notmeasured' }, 'not measured')));
    const outcome = el('table', { id: 'outcome' }, el('tr', {}, el('th', {}, 'Backend'), el('th', {}, 'What it applied')));
    for (const o of det.outcome) {
      outcome.append(el('tr', { 'data-backend': o.backend }, el('td', {}, o.backend || 'service'), el('td', {}, o.detail)));
    }
    if (det.outcome.length === 0) outcome.append(el('tr', {}, el('td', { colspan: 2, class: 'muted' }, 'nothing reported yet')));
    let plots;
    if (samples.length === 0 && !m.counters) {
      plots = el('p', { class: 'notmeasured', id: 'plots' }, 'not measured: no mitigator reports drop counters for this request');
    } else {
      const now = Date.now() + skew;
      plots = el('div', { class: 'plots', id: 'plots' },
        plot('plot-bps', 'Dropped bit rate, last 15 min', samples, 'bps', bps, det.window_seconds, det.sample_every_seconds, now),
        plot('plot-pps', 'Dropped packet rate, last 15 min', samples, 'pps', pps, det.window_seconds, det.sample_every_seconds, now));
    }
    main(el('h1', {}, 'Mitigation ', el('span', { id: 'mid' }, m.mid), ' ', statusBadge(m.status, m.status_name)),
      plots, el('h2', {}, 'Request'), info, el('h2', {}, 'Route, DNS and scrubbing state'), outcome,
      el('p', {}, el('a', { href: '/mitigations' }, '← all mitigations')));
  };
  draw();
  const mine = (x) => x.cuid === det.mitigation.cuid && x.mid === det.mitigation.mid;
  live.samples = (items) => {
    let changed = false;
    for (const s of items) {
      if (mine(s)) { samples.push(s); changed = true; }
    }
    const cut = Date.now() + skew - det.window_seconds * 1000;
    while (samples.length > 0 && samples[0].t < cut) samples.shift();
    if (changed) draw();
  };
  live.mitigations = async (items) => {
    const item = items.find(mine);
    if (!item) return;
    det.mitigation = item;
    det.outcome = [];
    try {
      det.outcome = (await getJSON(api)).outcome;
    } catch (e) {
      // Ended and gone: the last state streamed is what there is.
    }
    draw();
  };
}

// ---- BGP neighbors ----

// announced lists the mitigations' routes a neighbor was sent.
function announced(list) {
  if (list.length === 0) return [el('span', { class: 'muted' }, 'none')];
  return list.map((a) => el('div', { 'data-mid': a.mid }, el('a', { href: detailHref(a) }, 'mid ' + a.mid), ' ', el('code', {}, a.routes)));
}

async function bgpPage() {
  const render = async () => {
    const b = await getJSON('/api/bgp');
    if (!b.configured) {
      main(el('h1', {}, 'BGP neighbors'), el('p', { class: 'muted' }, 'no BGP speaker configured'));
      return;
    }
    const t = el('table', { id: 'neighbors' }, el('tr', {}, el('th', {}, 'Neighbor'), el('th', {}, 'Address'), el('th', { class: 'num' }, 'Peer AS'),
      el('th', {}, 'State'), el('th', {}, 'Families negotiated'), el('th', {}, 'Receives'),
      el('th', { class: 'num' }, 'Routes announced'), el('th', {}, 'For the mitigations'), el('th', { class: 'num' }, 'Sessions since start')));
    for (const n of b.neighbors) {
      t.append(el('tr', { 'data-neighbor': n.name },
        el('td', {}, n.name), el('td', {}, el('code', {}, n.address)), el('td', { class: 'num' }, 'AS' + n.peer_as),
        el('td', { class: 'state' }, el('span', { class: 'badge ' + (n.established ? 'up' : 'down') }, n.established ? 'established' : 'down')),
        el('td', {}, (n.negotiated_families || []).join(', ') || '—'),
        el('td', {}, (n.receives || []).join(', ') || 'rtbh, flowspec, scrubbing'),
        el('td', { class: 'num routes' }, n.routes_announced + (n.routes_announced === 1 ? ' route' : ' routes')),
        el('td', { class: 'announced' }, ...announced(n.announced)),
        el('td', { class: 'num' }, n.sessions_established)));
    }
    if (b.neighbors.length === 0) t.append(el('tr', {}, el('td', { colspan: 9, class: 'muted' }, 'no neighbors configured')));
    main(el('h1', {}, 'BGP neighbors'), t);
  };
  await render();
  live.mitigations = () => setTimeout(render, 500);
  every(render, 5000);
}

// ---- Event log ----

function eventRow(e) {
  return el('tr', { 'data-mid': e.mid },
    el('td', { class: 'num' }, utc(e.at)),
    el('td', {}, el('a', { href: detailHref(e) }, e.mid), el('div', { class: 'muted' }, el('code', {}, e.cuid))),
    el('td', {}, e.ended ? el('span', { class: 'badge st-6' }, 'ended') : statusBadge(e.status, e.status_name)),
    el('td', {}, e.note || ''));
}

async function eventsPage() {
  const l = await getJSON('/api/events');
  const body = el('tbody', { id: 'event-rows' });
  for (const e of l.events) body.append(eventRow(e));
  const empty = el('p', { class: 'muted' }, 'No events since dotsd started.');
  empty.hidden = l.events.length > 0;
  main(el('h1', {}, 'Event log'), empty, el('table', { id: 'events' },
    el('thead', {}, el('tr', {}, el('th', { class: 'num' }, 'Time'), el('th', {}, 'mid'), el('th', {}, 'Status'), el('th', {}, 'Note'))), body));
  live.log = (items) => {
    for (const e of items) {
      const row = eventRow(e);
      row.classList.add('flash');
      body.prepend(row);
    }
    empty.hidden = body.children.length > 0;
  };
}

const routes = { '/': overviewPage, '/mitigations': mitigationsPage, '/mitigation': mitigationPage, '/bgp': bgpPage, '/events': eventsPage };

document.addEventListener('DOMContentLoaded', async () => {
  const page = location.pathname;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.page === page || (page === '/mitigation' && a.dataset.page === '/mitigations')) a.classList.add('current');
  }
  const fn = routes[page];
  if (!fn) return;
  const load = async () => {
    try {
      await fn();
      document.body.dataset.ready = 'true';
    } catch (e) {
      main(el('p', { class: 'error' }, 'Could not load: ' + e.message));
    }
  };
  await load();
  connectLive(load);
});
