// main.js — the page: panels, controls, status badge, and the link to the
// shared connection (worker.js). All text from the server goes through
// textContent or uPlot (which uses textContent too); no innerHTML anywhere.
//
// Hidden tab: rendering stops (no setData, no canvas work), frames keep
// flowing into the panels' arrays. Appending a frame costs microseconds and
// the shared stream is open anyway for the other tabs, so this is cheaper and
// simpler than unsubscribing and resuming by ID; the tab is current the instant
// it becomes visible again — one render per panel, no network round trip.
import { Hub, parseId } from './client.js';
import { Panel, topicOrder, refreshTheme } from './charts.js';
import { fmt } from './format.js';

const $ = (id) => document.getElementById(id);
const windows = [60, 300, 900, 3600];
const params = new URLSearchParams(location.search);

const st = {
  windowSec: windows.includes(Number(params.get('window'))) ? Number(params.get('window')) : 300,
  paused: false,
  panels: new Map(), // topic → Panel
  catalog: new Map(), // topic → [{name, labels, unit}]
  intervals: new Map(), // topic → collector interval, ms
  hub: { state: 'connecting' },
  lastId: null,
  lag: null,
  gen: 0, // reload generation: answers of an older reload are ignored
  errors: [],
  firstPaintMs: null,
  renders: 0,
  rr: 0, // round-robin start of the next frame's drawing
  chartsDrawn: 0,
  builds: 0,
  renderMsTotal: 0,
  renderMsMax: 0,
  frames: 0,
  transport: '',
  measures: 0,
  renderLog: [], // the newest renders: {start, dur, charts, rebuilt} (ms)
};

// ---- the shared connection ----------------------------------------------

function connect(onMsg) {
  if (typeof SharedWorker === 'function' && !params.has('noworker')) {
    // A URL without user info: a page opened as https://user:pass@host/
    // would otherwise hand the credentials to the worker's URL, which
    // browsers refuse to fetch. The browser sends the login it holds for
    // the origin with the worker's requests, as with the page's.
    const wu = new URL('./worker.js', import.meta.url);
    wu.username = '';
    wu.password = '';
    const w = new SharedWorker(wu, { type: 'module', name: 'livedash' });
    w.onerror = (e) => console.error('livedash worker:', e.message || e);
    w.port.onmessage = (e) => onMsg(e.data);
    w.port.start();
    addEventListener('pagehide', (e) => { if (!e.persisted) w.port.postMessage({ type: 'bye' }); });
    st.transport = 'shared-worker';
    return (m) => w.port.postMessage(m);
  }
  // No SharedWorker (Chrome on Android): this tab holds its own connection.
  const hub = new Hub({ base: location.origin });
  const sub = { post: (m) => queueMicrotask(() => onMsg(m)) };
  hub.add(sub);
  st.transport = 'page';
  return (m) => {
    if (m.type === 'need') hub.need(sub, m.after, m.transport);
    else if (m.type === 'topics') hub.setTopics(sub, m.topics);
    else if (m.type === 'debug') sub.post({ type: 'debug', hub: hub.status() });
  };
}

let debugWaiters = [];
const post = connect((m) => {
  switch (m.type) {
    case 'status': onStatus(m.status); break;
    case 'frames': onFrames(m); break;
    case 'reset': reloadAll(true); break;
    case 'gap': reloadAll(true); break;
    case 'debug': for (const w of debugWaiters) w(m.hub); debugWaiters = []; break;
    default: break;
  }
});

// The transport the connection settled on is the session's: the next page
// load starts there (and the hub still probes better ones later).
const transportKey = 'livedash.transport';
function remembered() {
  try { return sessionStorage.getItem(transportKey); } catch { return null; }
}

function onStatus(s) {
  const before = st.hub.topics;
  st.hub = s;
  st.lastId = s.lastId || st.lastId;
  if (s.state === 'live' || s.state === 'polling') {
    try { sessionStorage.setItem(transportKey, s.transport); } catch { /* storage off */ }
  }
  // Charts shown again wait until the connection carries their topic, then
  // re-load their window: the query covers everything up to then.
  if (!sameSet(before, s.topics)) {
    for (const p of st.panels.values()) {
      if (p.awaiting && covered(p.topic)) { p.awaiting = false; loadPanel(p, st.gen); }
    }
  }
  badge();
}

function sameSet(a, b) { return (a ?? null) === (b ?? null) || (Array.isArray(a) && Array.isArray(b) && a.join() === b.join()); }
function covered(topic) { const t = st.hub.topics; return t === null || t === undefined || t.includes(topic); }

// shownTopics: what this tab needs streamed — every topic (null) unless a
// chart is hidden, then the shown ones.
function shownTopics() {
  const ps = [...st.panels.values()];
  if (!ps.some((p) => p.hidden)) return null;
  return ps.filter((p) => !p.hidden).map((p) => p.topic);
}

// toggle hides or shows a chart. Hidden, its topic leaves this tab's
// subscription (on WebSocket a "subscribe" on the open connection); shown
// again, it re-loads once the connection carries the topic again.
function toggle(p) {
  p.setHidden(!p.hidden);
  post({ type: 'topics', topics: shownTopics() });
  if (p.hidden) return;
  p.reloading();
  if (covered(p.topic)) loadPanel(p, st.gen);
  else p.awaiting = true;
}

function onFrames(m) {
  st.lastId = m.lastId;
  st.lag = m.lag;
  for (const f of m.frames) {
    st.frames++;
    let p = st.panels.get(f.topic);
    if (p && p.hidden) continue;
    if (!p) {
      if (typeof f.topic !== 'string' || !f.topic) continue;
      p = addPanel(f.topic);
      loadPanel(p, st.gen);
    }
    p.push(f);
  }
  schedule();
  badge();
}

// ---- loading -------------------------------------------------------------

// API URLs are built on location.origin, which has no user info: fetch()
// refuses a URL with credentials, and a relative URL would inherit them
// from a page opened as https://user:pass@host/. The login travels as the
// browser's own Authorization header (credentials: 'same-origin').
async function getJSON(url) {
  const res = await fetch(location.origin + url, { cache: 'no-store', credentials: 'same-origin' });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

// Back-fill resolution: 2 s buckets from 5 minutes up. Collectors tick every
// second with jitter, so 1 s buckets leave empty ones that draw as false gaps;
// live frames are appended at full rate either way.
function points() { return Math.min(st.windowSec >= 300 ? st.windowSec / 2 : st.windowSec, 1200); }

async function loadPanel(p, gen) {
  p.reloading();
  const q = new URLSearchParams({ topics: p.topic, after: String(-st.windowSec), before: '0', points: String(points()), group: 'avg' });
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await getJSON('/api/v1/query?' + q);
      if (gen !== st.gen) return null;
      p.windowSec = st.windowSec;
      p.load(r);
      schedule();
      return r.last || null;
    } catch (e) {
      if (gen !== st.gen) return null;
      // The server may be restarting; the stream's own loop will tell us when
      // it is back, but keep trying quietly with a capped delay.
      await new Promise((res) => setTimeout(res, Math.min(10000, 500 * 2 ** attempt)));
    }
  }
}

// addPanel puts a topic's panel in its place in the known order, so a topic
// that first shows up in the stream still lands where it belongs.
function addPanel(topic) {
  const next = sortTopics([...st.panels.keys(), topic]);
  const after = next[next.indexOf(topic) + 1];
  const before = after ? st.panels.get(after).el : null;
  const p = new Panel(topic, $('panels'), { windowSec: st.windowSec, catalog: st.catalog.get(topic) || [], intervalMs: st.intervals.get(topic), before });
  p.onToggle = () => toggle(p);
  st.panels.set(topic, p);
  resizeObs.observe(p.body);
  onScreenObs.observe(p.el);
  return p;
}

function sortTopics(ts) {
  const rank = (t) => { const i = topicOrder.indexOf(t); return i < 0 ? topicOrder.length : i; };
  return ts.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

// reloadAll re-loads every panel's window (start-up, reset, gap, window
// change) and then tells the hub which frames this tab still needs.
async function reloadAll(markGap) {
  const gen = ++st.gen;
  const now = (Date.now() + (st.hub.offset || 0)) / 1000; // server clock, like the x axis
  const shown = [...st.panels.values()].filter((p) => !p.hidden);
  for (const p of shown) p.reloading();
  const lasts = await Promise.all(shown.map((p) => loadPanel(p, gen)));
  if (gen !== st.gen) return;
  if (markGap) for (const p of st.panels.values()) p.mark(now);
  needFrom(lasts);
}

function needFrom(lasts) {
  let min = null;
  for (const l of lasts) {
    const id = parseId(l);
    if (id && (min === null || id.seq < min.seq)) min = { ...id, s: l };
  }
  post({ type: 'need', after: min ? min.s : null, transport: remembered() });
}

async function start() {
  let cat = { topics: [] };
  for (let attempt = 0; ; attempt++) {
    try { cat = await getJSON('/api/v1/series'); break; } catch (e) {
      if (attempt === 0) console.warn('livedash: catalog not available yet, retrying');
      await new Promise((res) => setTimeout(res, Math.min(5000, 250 * 2 ** attempt)));
    }
  }
  const topics = [];
  for (const t of cat.topics || []) {
    if (typeof t.topic !== 'string') continue;
    st.catalog.set(t.topic, t.series || []);
    if (t.interval_ms > 0) st.intervals.set(t.topic, t.interval_ms);
    topics.push(t.topic);
  }
  for (const t of sortTopics(topics)) addPanel(t);
  await reloadAll(false);
}

// ---- rendering -----------------------------------------------------------

let rafPending = false;
function schedule() {
  if (rafPending || st.paused || document.hidden) return;
  rafPending = true;
  requestAnimationFrame(renderAll);
}

// renderAll draws dirty panels, at most ~frameBudgetMs per animation frame
// (the rest in the next frame, round-robin), and skips panels scrolled out
// of view: they stay dirty and draw when they come back. Hidden or paused:
// nothing is drawn; data keeps arriving.
//
// The budget is large enough for a whole update of a typical dashboard in
// one frame: every extra frame costs a style/layout/paint/commit pass of its
// own, so spreading one update over several frames costs more main-thread
// time in total. It still bounds a frame of a very large dashboard.
const frameBudgetMs = 12;
function renderAll() {
  rafPending = false;
  if (st.paused || document.hidden) return;
  const t0 = performance.now();
  const ps = [...st.panels.values()];
  let drew = 0;
  let rebuilt = false;
  for (let k = 0; k < ps.length; k++) {
    const i = (st.rr + k) % ps.length;
    const p = ps[i];
    if (p.hidden || !p.dirty || p.state !== 'ready' || (p.u && !p.onScreen)) continue;
    if (drew && performance.now() - t0 > frameBudgetMs) {
      st.rr = i;
      schedule();
      break;
    }
    rebuilt = rebuilt || !p.u || p.rebuild;
    if (p.render()) drew++;
  }
  if (!drew) return;
  const end = performance.now();
  const ms = end - t0;
  performance.measure('livedash-render', { start: t0, end, detail: { charts: drew, rebuilt } });
  // The timeline keeps every measure until cleared: keep an hour's worth.
  if (++st.measures % 4000 === 0) performance.clearMeasures('livedash-render');
  st.renderLog.push({ start: t0, dur: ms, charts: drew, rebuilt });
  if (st.renderLog.length > 600) st.renderLog.splice(0, 100);
  // Steady state (every chart already built) is what live updates cost the
  // main thread; chart (re)creation is counted apart.
  if (!rebuilt) {
    st.renders++;
    st.renderMsTotal += ms;
    st.renderMsMax = Math.max(st.renderMsMax, ms);
    st.chartsDrawn += drew;
  } else {
    st.builds++;
  }
  if (st.firstPaintMs === null && ps.some((p) => p.u)) {
    st.firstPaintMs = end;
    performance.mark('livedash-first-chart');
  }
}

const onScreenObs = new IntersectionObserver((entries) => {
  for (const e of entries) {
    for (const p of st.panels.values()) {
      if (p.el === e.target) { p.onScreen = e.isIntersecting; if (p.onScreen && p.dirty) schedule(); }
    }
  }
}, { rootMargin: '200px' });

const resizeObs = new ResizeObserver((entries) => {
  for (const e of entries) for (const p of st.panels.values()) if (p.body === e.target) p.resize(e.contentRect.width);
});

document.addEventListener('visibilitychange', () => {
  if (!document.hidden) { for (const p of st.panels.values()) p.dirty = true; schedule(); }
  badge();
});

const scheme = matchMedia('(prefers-color-scheme: dark)');
scheme.addEventListener('change', () => { refreshTheme(); for (const p of st.panels.values()) p.redraw(); });

// ---- controls and badge ----------------------------------------------------

function controls() {
  const box = $('windows');
  for (const w of windows) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = w < 3600 ? `${w / 60}m` : `${w / 3600}h`;
    b.dataset.window = String(w);
    b.setAttribute('aria-pressed', String(w === st.windowSec));
    b.addEventListener('click', () => {
      if (w === st.windowSec) return;
      st.windowSec = w;
      for (const x of box.children) x.setAttribute('aria-pressed', String(x === b));
      const u = new URL(location.href);
      u.searchParams.set('window', String(w));
      history.replaceState(null, '', u);
      for (const p of st.panels.values()) { p.windowSec = w; p.rebuild = true; }
      reloadWindows();
    });
    box.append(b);
  }
  $('pause').addEventListener('click', () => {
    st.paused = !st.paused;
    $('pause').textContent = st.paused ? 'Resume' : 'Pause';
    $('pause').setAttribute('aria-pressed', String(st.paused));
    if (!st.paused) { for (const p of st.panels.values()) p.dirty = true; schedule(); }
    badge();
  });
}

// A window change re-loads every panel; frames keep arriving meanwhile and
// are queued per panel, so no "need" round trip is necessary.
async function reloadWindows() {
  const gen = ++st.gen;
  const shown = [...st.panels.values()].filter((p) => !p.hidden);
  for (const p of shown) p.reloading();
  await Promise.all(shown.map((p) => loadPanel(p, gen)));
}

function badge() {
  const el = $('status');
  const h = st.hub;
  let state = h.state === 'polling' ? 'polling' : h.state;
  if (st.paused) state = 'paused';
  let text;
  switch (state) {
    case 'live': text = 'live · ' + (h.transport === 'ws' ? 'WebSocket' : 'SSE'); break;
    case 'polling': text = 'polling (stream blocked)'; break;
    case 'paused': text = 'paused'; break;
    case 'reconnecting': {
      const s = Math.max(0, Math.ceil((h.nextTryAt - Date.now()) / 1000));
      text = `reconnecting — next try in ${s} s`;
      break;
    }
    default: text = 'connecting…';
  }
  // Frames arrive every second: write only what changed (each write is a
  // style, layout and paint of the header).
  setText(el, 'className', 'badge state-' + state);
  setText($('status-state'), 'textContent', text);
  setText($('status-id'), 'textContent', st.lastId || '');
  setText($('status-lag'), 'textContent', st.lag === null || st.lag === undefined ? '' : 'lag ' + fmt(st.lag / 1000, 'seconds'));
}

function setText(el, prop, v) { if (el[prop] !== v) el[prop] = v; }
setInterval(() => { if (!document.hidden && st.hub.state === 'reconnecting') badge(); }, 1000);

// ---- test and debug hook ---------------------------------------------------

window.livedash = {
  panels: () => st.panels, // for profiling from the console
  renderLog: () => st.renderLog.slice(), // per animation frame that drew: start, dur (ms), charts
  // debug: a synchronous snapshot for tests: the connection state as this tab
  // last heard it, and per panel the seqs drawn since its last load.
  debug() {
    const charts = {};
    for (const [t, p] of st.panels) charts[t] = p.debug();
    return {
      state: st.paused ? 'paused' : st.hub.state, mode: st.hub.mode, lastId: st.lastId, lag: st.lag,
      transport: st.transport, windowSec: st.windowSec, hub: st.hub, charts, frames: st.frames,
      firstPaintMs: st.firstPaintMs, renders: st.renders, builds: st.builds,
      renderMsAvg: st.renders ? st.renderMsTotal / st.renders : null, renderMsMax: st.renderMsMax,
      chartMsAvg: st.chartsDrawn ? st.renderMsTotal / st.chartsDrawn : null,
    };
  },
  // hub: the worker's own status (async; it lives in another thread).
  hub() {
    return new Promise((resolve) => { debugWaiters.push(resolve); post({ type: 'debug' }); });
  },
};

refreshTheme();
controls();
badge();
start();
