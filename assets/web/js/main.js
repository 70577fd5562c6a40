// main.js — the page: panels, controls, zoom, badge, the shared connection.
// Server text goes through textContent (uPlot's too), never HTML. assets/PAGE.md.
import { Hub, parseId } from './client.js';
import { Panel, makeSpec, topicOrder, refreshTheme } from './charts.js';
import { fmt, dateFmt } from './format.js';

const $ = (id) => document.getElementById(id);
const windows = [60, 300, 900, 3600];
const longer = [10800, 21600, 43200, 86400, 172800, 604800, 2592000];
const params = new URLSearchParams(location.search);
const asked = Number(params.get('window'));

const st = {
  windowSec: windows.includes(asked) || longer.includes(asked) ? asked : 300,
  paused: false,
  zoom: null,
  panels: new Map(),
  byTopic: new Map(),
  specs: [],
  thresholds: [],
  configured: false,
  intervals: new Map(),
  host: '',
  node: null,
  hub: { state: 'connecting' },
  lastId: null,
  lag: null,
  now: 0, // newest frame time (s)
  gen: 0,
  firstPaintMs: null,
  renders: 0,
  rr: 0,
  chartsDrawn: 0,
  builds: 0,
  renderMsTotal: 0,
  renderMsMax: 0,
  frames: 0,
  transport: '',
  measures: 0,
  renderLog: [],
};


function connect(onMsg) {
  if (typeof SharedWorker === 'function' && !params.has('noworker')) {
    // no user info in the URL (see PAGE.md, Credentials)
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
  // No SharedWorker (Chrome on Android): a connection per tab.
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
    case 'reset': case 'gap': reloadAll(true); break;
    case 'debug': for (const w of debugWaiters) w(m.hub); debugWaiters = []; break;
    default: break;
  }
});

// The session's transport (PAGE.md, The connection).
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
  // charts shown again re-load once the connection carries their topic
  if (!sameSet(before, s.topics)) {
    for (const p of st.panels.values()) {
      if (p.awaiting && covered(p.topic)) { p.awaiting = false; loadPanel(p, st.gen); }
    }
  }
  badge();
}

function sameSet(a, b) { return (a ?? null) === (b ?? null) || (Array.isArray(a) && Array.isArray(b) && a.join() === b.join()); }
function covered(topic) { const t = st.hub.topics; return t === null || t === undefined || t.includes(topic); }

// shownTopics: the topics of shown charts; null (all) when none is hidden.
function shownTopics() {
  const ps = [...st.panels.values()];
  if (!ps.some((p) => p.hidden)) return null;
  return [...new Set(ps.filter((p) => !p.hidden).map((p) => p.topic))];
}
const shown = () => [...st.panels.values()].filter((p) => !p.hidden);

// toggle hides or shows a chart, and its topic in the subscription.
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
    if (typeof f.topic !== 'string' || !f.topic) continue;
    if (f.ts / 1000 > st.now) st.now = f.ts / 1000;
    // another instance since start-up (its own metrics carry its node): the
    // selector, this node shown
    const nl = f.topic === 'self' && f.samples?.[0]?.labels?.node;
    if (nl && st.node === null && st.own && nl !== st.own && !st.asked) { st.asked = true; get('/api/v1/status').then((s) => { nodes(st.own, s.nodes); st.asked = st.node !== null; }).catch(() => { st.asked = false; }); }
    let ps = st.byTopic.get(f.topic);
    if (!ps && st.ready && autoAllowed(f.topic)) {
      const p = addPanel(makeSpec({ id: freeId(f.topic), topic: f.topic }, true));
      loadPanel(p, st.gen);
      ps = st.byTopic.get(f.topic);
    }
    for (const p of ps || []) if (!p.hidden) p.push(f);
  }
  // panels without frames move with the others' time, once per pixel
  const lag = Math.max(2, st.windowSec / 300);
  for (const p of st.panels.values()) if (p.state === 'ready' && !p.xr && p.views.length && st.now - (p.drawnAt || 0) >= lag) p.dirty = true;
  schedule();
  badge();
}


// URLs on location.origin: never user info (PAGE.md, Credentials).
async function get(url) {
  const res = await fetch(location.origin + url, { cache: 'no-store', credentials: 'same-origin' });
  if (!res.ok) { const e = new Error(`${url}: HTTP ${res.status}`); e.status = res.status; throw e; }
  return res.json();
}
const later = (ms) => new Promise((res) => setTimeout(res, ms));

// 2 s buckets from 5 minutes up (PAGE.md, The seam).
function points() { return Math.min(st.windowSec >= 300 ? st.windowSec / 2 : st.windowSec, 1200); }

async function loadPanel(p, gen) {
  p.reloading();
  for (let attempt = 0; ; attempt++) {
    const z = st.zoom;
    const q = new URLSearchParams(z
      ? { topics: p.topic, after: String(Math.floor(z[0])), before: String(Math.ceil(z[1])), points: String(Math.min(1200, Math.max(60, Math.ceil(z[1] - z[0])))), group: 'avg' }
      : { topics: p.topic, after: String(-st.windowSec), before: '0', points: String(points()), group: 'avg' });
    const sel = p.noSel ? null : p.selector();
    if (sel) q.set('series', sel);
    try {
      const r = await get('/api/v1/query?' + q);
      if (gen !== st.gen) return null;
      p.windowSec = st.windowSec;
      p.xr = z;
      p.load(r);
      schedule();
      return r.last || null;
    } catch (e) {
      if (gen !== st.gen) return null;
      if (e.status === 400 || e.status === 404) {
        // unknown series or topic: the topic, then nothing; frames fill it
        if (sel) { p.noSel = true; continue; }
        p.xr = z;
        p.load({ series: [], data: [[]], last: null });
        return null;
      }
      // the server may be restarting: retry, capped
      await later(Math.min(10000, 500 * 2 ** attempt));
    }
  }
}

// Automatic panels: topics no panel names, unless the dashboard says no.
function autoAllowed(topic) { return st.others && !st.byTopic.has(topic); }
function freeId(topic) { return st.panels.has(topic) ? 'auto:' + topic : topic; }

// addPanel: listed panels in order, then automatic ones by topic.
function addPanel(spec) {
  let before = null;
  if (spec.auto) {
    const rank = (t) => { const i = topicOrder.indexOf(t); return i < 0 ? topicOrder.length : i; };
    for (const q of st.panels.values()) {
      if ((q.spec.auto || !st.configured) && (rank(q.topic) - rank(spec.topic) || (q.topic > spec.topic ? 1 : -1)) > 0) { before = q.el; break; }
    }
  }
  const p = new Panel(spec, $('panels'), {
    windowSec: st.windowSec, intervalMs: st.intervals.get(spec.topic), before, thresholds: st.thresholds,
    now: () => st.now, node: () => st.node, schedule,
  });
  p.onZoom = zoomTo;
  p.onReload = () => loadPanel(p, st.gen);
  p.onToggle = () => toggle(p);
  const all = [...st.panels.values(), p];
  st.panels = new Map([...$('panels').children].map((el) => all.find((x) => x.el === el)).filter(Boolean).map((x) => [x.id, x]));
  if (!st.byTopic.has(spec.topic)) st.byTopic.set(spec.topic, []);
  st.byTopic.get(spec.topic).push(p);
  resizeObs.observe(p.body);
  onScreenObs.observe(p.el);
  return p;
}

// reloadAll re-loads every panel, then tells the hub what this tab needs.
async function reloadAll(markGap) {
  const gen = ++st.gen;
  const now = (Date.now() + (st.hub.offset || 0)) / 1000;
  const lasts = await Promise.all(shown().map((p) => loadPanel(p, gen)));
  if (gen !== st.gen) return;
  if (markGap) for (const p of st.panels.values()) p.mark(now);
  let min = null;
  for (const l of lasts) {
    const id = parseId(l);
    if (id && (min === null || id.seq < min.seq)) min = { ...id, s: l };
  }
  // no shown panel has a cursor: frames reach every tab anyway (asking
  // from nowhere would be answered "gap", and re-load again)
  if (!min && st.lastId) return;
  post({ type: 'need', after: min ? min.s : null, transport: remembered() });
}

// A window change or zoom: frames meanwhile are queued (PAGE.md, Zoom).
async function reloadWindows() {
  const gen = ++st.gen;
  await Promise.all(shown().map((p) => loadPanel(p, gen)));
}

async function retry(url, what) {
  for (let attempt = 0; ; attempt++) {
    try { return await get(url); } catch (e) {
      // 404: not served; another error answer, thrice: give up (built-ins)
      if (e.status === 404 || (e.status && attempt > 1)) return null;
      if (attempt === 0) console.warn(`livedash: ${what} not available yet, retrying`);
      await later(Math.min(5000, 250 * 2 ** attempt));
    }
  }
}

async function start() {
  // the dashboard names host and panels; 404: a panel per topic
  const [dash, cat, status] = await Promise.all([retry('/api/v1/dashboard', 'dashboard'), retry('/api/v1/series', 'catalog'), get('/api/v1/status').catch(() => null)]);
  st.host = (dash && (dash.host || dash.node)) || (status && (status.host || status.hostname)) || '';
  $('host').title = dash && dash.node && dash.node !== dash.host ? 'node ' + dash.node : '';
  showHost();
  picker(status && status.retention && status.retention.max_age);
  st.own = dash && dash.node;
  nodes(st.own, status && status.nodes);
  const panels = dash && Array.isArray(dash.panels) && dash.panels.length ? dash.panels : null;
  st.configured = !!panels;
  st.others = !panels || dash.other_topics !== false;
  st.thresholds = (dash && Array.isArray(dash.thresholds) ? dash.thresholds : []).filter((t) => t && typeof t.series === 'string');
  const topics = [];
  for (const t of (cat && cat.topics) || []) {
    if (typeof t.topic !== 'string') continue;
    if (t.interval_ms > 0) st.intervals.set(t.topic, t.interval_ms);
    topics.push(t.topic);
  }
  const ids = new Set();
  st.specs = (panels || []).filter((r) => r && typeof r.topic === 'string').map((r, i) => {
    let id = String(r.id || r.topic);
    if (ids.has(id)) id += '#' + i; // ids name panels in the debug hook: unique
    ids.add(id);
    return makeSpec({ ...r, id });
  });
  for (const s of st.specs) addPanel(s);
  for (const t of topics) if (autoAllowed(t)) addPanel(makeSpec({ id: freeId(t), topic: t }, true));
  st.ready = true; // from now on, frames of new topics add panels
  await reloadAll(false);
}


let rafPending = false;
function schedule() {
  if (rafPending || st.paused || document.hidden) return;
  rafPending = true;
  requestAnimationFrame(renderAll);
}

// renderAll draws dirty panels on screen, ~frameBudgetMs per frame, round-robin.
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
    p.drawnAt = st.now;
    if (p.render()) drew++;
  }
  if (!drew) return;
  const end = performance.now();
  const ms = end - t0;
  performance.measure('livedash-render', { start: t0, end, detail: { charts: drew, rebuilt } });
  if (++st.measures % 4000 === 0) performance.clearMeasures('livedash-render');
  st.renderLog.push({ start: t0, dur: ms, charts: drew, rebuilt });
  if (st.renderLog.length > 600) st.renderLog.splice(0, 100);
  // steady state apart from (re)creation
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


const label = (w) => (w < 3600 ? `${w / 60}m` : w < 86400 ? `${w / 3600}h` : `${w / 86400}d`);

function controls() {
  for (const w of windows) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label(w);
    b.dataset.window = String(w);
    b.addEventListener('click', () => setWindow(w));
    $('windows').append(b);
  }
  $('longer').addEventListener('change', (e) => { if (e.target.value) setWindow(Number(e.target.value)); });
  $('pause').addEventListener('click', () => {
    st.paused = !st.paused;
    $('pause').textContent = st.paused ? 'Resume' : 'Pause';
    $('pause').setAttribute('aria-pressed', String(st.paused));
    if (!st.paused) { for (const p of st.panels.values()) p.dirty = true; schedule(); }
    badge();
  });
  $('live').addEventListener('click', backToLive);
  pressed();
}

// nodes: with several instances on one store, the node shown (this
// instance's first), or all of them; the header names it.
function nodes(own, seen) {
  const ns = [...new Set([own, ...(seen || []).map((n) => n && n.name)])].filter((n) => typeof n === 'string' && n);
  if (ns.length < 2) return;
  const sel = $('node');
  for (const n of [...ns, '']) sel.append(new Option(n || 'all nodes', n));
  const want = params.get('node');
  st.node = want !== null && (want === '' || ns.includes(want)) ? want : ns[0];
  sel.value = st.node;
  sel.hidden = false;
  const apply = () => {
    for (const p of st.panels.values()) p.rebuild = true;
    showHost();
    reloadWindows();
  };
  sel.addEventListener('change', () => {
    st.node = sel.value;
    const u = new URL(location.href);
    u.searchParams.set('node', st.node);
    history.replaceState(null, '', u);
    apply();
  });
  apply();
}
function showHost() {
  const h = st.node === null ? st.host : st.node || 'all nodes';
  if (!h) return;
  $('host').textContent = h;
  document.title = h + ' · livedash';
}

// picker: windows beyond an hour, up to the retention.
function picker(maxAge) {
  const sel = $('longer');
  const lim = goDuration(maxAge) || Infinity;
  for (const w of longer) {
    if (w > lim && w !== st.windowSec) continue;
    const o = document.createElement('option');
    o.value = String(w);
    o.textContent = label(w);
    sel.append(o);
  }
  pressed();
}

function goDuration(s) {
  let t = 0;
  for (const [, n, u] of String(s || '').matchAll(/([\d.]+)(h|m|s|ms|us|µs|ns)/g)) t += n * { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, µs: 1e-6, ns: 1e-9 }[u];
  return t;
}

function pressed() {
  for (const b of $('windows').children) b.setAttribute('aria-pressed', String(!st.zoom && Number(b.dataset.window) === st.windowSec));
  $('longer').value = longer.includes(st.windowSec) ? String(st.windowSec) : '';
}

function setWindow(w) {
  if (w === st.windowSec && !st.zoom) return;
  st.windowSec = w;
  st.zoom = null;
  const u = new URL(location.href);
  u.searchParams.set('window', String(w));
  history.replaceState(null, '', u);
  for (const p of st.panels.values()) { p.windowSec = w; p.rebuild = true; }
  pressed();
  badge();
  reloadWindows();
}

// zoomTo loads [a, b] on every panel; live frames wait for "back to live".
function zoomTo(a, b) {
  if (!(b - a >= 1)) return;
  st.zoom = [a, b];
  for (const p of st.panels.values()) p.rebuild = true;
  pressed();
  badge();
  reloadWindows();
}

function backToLive() {
  if (!st.zoom) return;
  st.zoom = null;
  for (const p of st.panels.values()) p.rebuild = true;
  pressed();
  badge();
  reloadWindows();
}

function badge() {
  const h = st.hub;
  let state = h.state === 'polling' ? 'polling' : h.state;
  if (st.paused) state = 'paused';
  if (st.zoom) state = 'zoomed';
  let text;
  switch (state) {
    case 'live': text = 'live · ' + (h.transport === 'ws' ? 'WebSocket' : 'SSE'); break;
    case 'polling': text = 'polling (stream blocked)'; break;
    case 'paused': text = 'paused'; break;
    case 'zoomed': text = `${dateFmt.format(st.zoom[0] * 1000)} – ${dateFmt.format(st.zoom[1] * 1000)}`; break;
    case 'reconnecting': text = `reconnecting — next try in ${Math.max(0, Math.ceil((h.nextTryAt - Date.now()) / 1000))} s`; break;
    default: text = 'connecting…';
  }
  setText($('status'), 'className', 'badge state-' + state);
  setText($('status-state'), 'textContent', text);
  setText($('status-id'), 'textContent', st.lastId || '');
  setText($('status-lag'), 'textContent', st.lag === null || st.lag === undefined ? '' : 'lag ' + fmt(st.lag / 1000, 'seconds'));
  setText($('live'), 'hidden', !st.zoom);
}

function setText(el, prop, v) { if (el[prop] !== v) el[prop] = v; }
setInterval(() => { if (!document.hidden && st.hub.state === 'reconnecting') badge(); }, 1000);


window.livedash = {
  panels: () => st.panels,
  renderLog: () => st.renderLog.slice(),
  // debug: a snapshot for tests, per panel by id in page order
  debug() {
    const charts = {};
    for (const [id, p] of st.panels) charts[id] = p.debug();
    return {
      state: st.paused ? 'paused' : st.hub.state, mode: st.hub.mode, lastId: st.lastId, lag: st.lag,
      transport: st.transport, windowSec: st.windowSec, zoom: st.zoom, host: st.host, node: st.node, configured: st.configured,
      order: [...st.panels.keys()], hub: st.hub, charts, frames: st.frames,
      firstPaintMs: st.firstPaintMs, renders: st.renders, builds: st.builds,
      renderMsAvg: st.renders ? st.renderMsTotal / st.renders : null, renderMsMax: st.renderMsMax,
      chartMsAvg: st.chartsDrawn ? st.renderMsTotal / st.chartsDrawn : null,
    };
  },
  hub() {
    return new Promise((resolve) => { debugWaiters.push(resolve); post({ type: 'debug' }); });
  },
};

refreshTheme();
controls();
badge();
start();
