// charts.js — a Panel per dashboard panel: its data (back-fill, then live
// frames), its views (uPlot charts) and their series layers. See assets/PAGE.md.
import { parseId } from './client.js';
import { fmt, unitKind, incrsOf, niceTop, tickFmt, timeStep, timeSplits, timeLabel, natural, quote, clean, clockFmt, dateFmt } from './format.js';

const U = () => globalThis.uPlot;
const maxSeries = 24;
const maxSeqs = 20000;
const fullEvery = 300;
export const palette = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

// The server's built-in panels (GET /api/v1/dashboard) have their topic as id;
// a panel of such an id and topic gets short legends and these extras.
const extras = {
  cpu: { max: 1, perCore: true },
  memory: { colors: { memory_free_bytes: '#bab0ac' }, limit: 'memory_total_bytes', parts: [{ series: ['memory_swap_used_bytes', 'memory_swap_free_bytes'], limit: 'memory_swap_total_bytes', title: 'swap', none: 'no swap' }] },
  network: { idle: /^(ifb|veth|docker|br-|virbr|vnet|tun|tap|dummy|vxlan|cali|flannel|cni|kube|wg|lo$)/ },
  filesystem: { meters: true },
  load: {}, disk: {}, system: {}, self: {},
};
// Titles and order of automatic panels.
const autoTitles = { http: 'HTTP probes', probe: 'Probes', prometheus: 'Scraped targets', synthetic: 'Synthetic' };
export const topicOrder = Object.keys(autoTitles);

function re(v) {
  try { return new RegExp('^(?:' + v + ')$'); } catch { console.warn('livedash: bad label pattern', v); return /$^/; }
}
const matchers = (o) => Object.entries(o || {}).map(([k, v]) => [k, re(String(v))]);

// makeSpec normalizes a panel of GET /api/v1/dashboard; label patterns are anchored.
export function makeSpec(r, auto) {
  const b = r.id === r.topic && Object.hasOwn(extras, r.id) && extras[r.id];
  const s = { ...b, ...r, unit: r.unit ? unitKind(r.unit) : '', auto: !!auto, short: !!b };
  if (auto && !r.title) s.title = autoTitles[r.topic] || r.topic;
  s.inc = matchers(r.include);
  s.exc = matchers(r.exclude);
  return s;
}

export function seriesKey(name, labels) {
  const ks = Object.keys(labels || {}).sort();
  return name + '{' + ks.map((k) => k + '=' + JSON.stringify(labels[k])).join(',') + '}';
}

function theme() {
  const cs = getComputedStyle(document.documentElement);
  const v = (n, d) => cs.getPropertyValue(n).trim() || d;
  return { fg: v('--fg', '#222'), grid: v('--grid', '#ddd'), mark: v('--mark', '#c00'), warn: v('--warn', '#c90'), bad: v('--bad', '#c00') };
}
let colors = null;
export function refreshTheme() { colors = theme(); }

const lastOf = (col) => { for (let i = col.length - 1; i >= 0; i--) if (col[i] !== null) return col[i]; return null; };
const magOf = (ss) => { let m = 0; for (const s of ss) for (const v of s.col) if (v !== null && Math.abs(v) > m) m = Math.abs(v); return m; };

const gkey = (gs) => gs.map((g) => g.map((s) => s.key).join()).join('|');

// clusters: series by unit, and metrics over ten times apart in separate groups.
function clusters(ss, split) {
  const byUnit = new Map();
  for (const s of ss) { if (!byUnit.has(s.unit)) byUnit.set(s.unit, []); byUnit.get(s.unit).push(s); }
  const out = [];
  for (const list of byUnit.values()) {
    if (!split) { out.push(list); continue; }
    const names = [...new Set(list.map((s) => s.name))].map((n) => { const m = list.filter((s) => s.name === n); return { m, mag: magOf(m) }; });
    names.sort((a, b) => b.mag - a.mag);
    const gs = [];
    for (const n of names) {
      const g = gs.find((x) => !n.mag || n.mag * 10 >= x.top);
      if (g) g.ss.push(...n.m); else gs.push({ top: n.mag, ss: [...n.m] });
    }
    for (const g of gs) out.push(list.filter((s) => g.ss.includes(s)));
  }
  return out;
}

// seriesPaths: a series' line, band (stacked) and dots over points i0..i1 in
// device pixels (x = x0 + v·kx, y = y0 − v·ky), decimated per pixel column.
function seriesPaths(xs, ys, base, x0, kx, y0, ky, i0, i1, r, dots) {
  const Y = (v) => y0 - v * ky;
  const stroke = new Path2D();
  const fill = base ? new Path2D() : null;
  const dot = new Path2D();
  const N = ys.length;
  let col = NaN; let n = 0; let yIn = 0; let yMin = 0; let yMax = 0; let yOut = 0; let pen = false; let first = 0; let lastI = 0;
  let seg = [];
  const to = (x, y) => { if (pen) stroke.lineTo(x, y); else { stroke.moveTo(x, y); pen = true; } };
  const flush = () => {
    if (n === 0) return;
    to(col, yIn);
    if (n > 2) {
      if (yMin !== yIn && yMin !== yOut) stroke.lineTo(col, yMin);
      if (yMax !== yIn && yMax !== yOut) stroke.lineTo(col, yMax);
    }
    if (n > 1) stroke.lineTo(col, yOut);
    if (dots || ((first === 0 || ys[first - 1] === null) && (lastI === N - 1 || ys[lastI + 1] === null))) {
      dot.moveTo(col + r, yOut);
      dot.arc(col, yOut, r, 0, 2 * Math.PI);
    }
    n = 0;
  };
  const band = () => {
    if (fill && seg.length) {
      fill.moveTo(seg[0], Y(ys[seg[1]]));
      for (let k = 2; k < seg.length; k += 2) fill.lineTo(seg[k], Y(ys[seg[k + 1]]));
      for (let k = seg.length - 2; k >= 0; k -= 2) fill.lineTo(seg[k], Y(base[seg[k + 1]]));
      fill.closePath();
    }
    seg = [];
  };
  for (let i = i0; i <= i1; i++) {
    const v = ys[i];
    if (v === null || v === undefined) {
      if (v === null) { flush(); pen = false; band(); }
      continue;
    }
    const x = Math.round(x0 + xs[i] * kx);
    const y = y0 - v * ky;
    if (n === 0 || x !== col) {
      flush();
      col = x; n = 1; yIn = yMin = yMax = yOut = y; first = lastI = i;
      if (fill) seg.push(x, i);
    } else {
      n++;
      if (y < yMin) yMin = y; else if (y > yMax) yMax = y;
      yOut = y; lastI = i;
      if (fill) seg[seg.length - 1] = i;
    }
  }
  flush();
  band();
  return { stroke, fill, dot };
}

// uPlot draws axes, grid, legend, cursor; lines are on View's layer.
const noPaths = () => null;
const splits = (min, max, step) => {
  const out = [];
  for (let k = Math.ceil(min / step - 1e-9); k * step <= max + step * 1e-9; k++) out.push(k * step);
  return out;
};

export class Panel {
  constructor(spec, parent, { windowSec, intervalMs = 0, before = null, thresholds = [], now = () => 0, node = () => null, schedule = () => {} }) {
    this.spec = spec;
    this.id = spec.id;
    this.topic = spec.topic;
    this.windowSec = windowSec;
    this.intervalMs = intervalMs;
    this.thresholds = thresholds.map((t) => ({ ...t, m: matchers(t.labels), x: matchers(t.exclude) }));
    this.now = now;
    this.node = node; // the node shown; '': all of them (not stacked); null: no choice
    this.schedule = schedule;
    this.state = 'loading';
    this.queue = [];
    this.lastSeq = -1;
    this.epoch = null;
    this.xs = [];
    this.series = [];
    this.byKey = new Map();
    this.hiddenKeys = new Set();
    this.seqs = [];
    this.marks = [];
    this.views = [];
    this.dirty = false;
    this.onScreen = true;
    this.dups = 0;
    this.omitted = 0;
    this.builds = 0;
    this.ticks = 0;
    this.main = [];
    this.xr = null; // zoomed range
    this.perCore = false;
    this.showIdle = false;
    this.level = '';

    const el = document.createElement('section');
    el.className = 'panel';
    el.dataset.id = spec.id;
    const head = document.createElement('div');
    head.className = 'head';
    const h = document.createElement('h2');
    h.textContent = spec.title || spec.topic;
    const span = (c) => { const s = document.createElement('span'); s.className = c; return s; };
    this.note = span('note');
    this.alert = span('alert');
    this.alert.hidden = true;
    h.append(' ', this.note);
    head.append(h, this.alert);
    const tool = (text, on) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = text;
      b.setAttribute('aria-pressed', 'false');
      b.addEventListener('click', () => { b.setAttribute('aria-pressed', String(on())); });
      head.append(b);
      return b;
    };
    if (spec.perCore) tool('per core', () => { this.perCore = !this.perCore; if (this.onReload) this.onReload(); return this.perCore; });
    if (spec.idle) {
      this.idleBtn = tool('', () => { this.showIdle = !this.showIdle; this.rebuild = this.dirty = true; this.schedule(); return this.showIdle; });
      this.idleBtn.hidden = true;
    }
    this.hidden = false;
    this.hideBtn = tool('Hide', () => { if (this.onToggle) this.onToggle(); return this.hidden; });
    this.hideBtn.className = 'hide';
    this.body = document.createElement('div');
    this.body.className = 'chart';
    el.append(head, this.body);
    if (spec.meters) {
      this.meters = document.createElement('div');
      this.meters.className = 'meters';
      el.append(this.meters);
    }
    parent.insertBefore(el, before);
    this.el = el;
  }

  get u() { return this.views.length ? this.views[0].u : null; }

  // selector: the query's series= when the filter is one (exact values only).
  selector() {
    if (this.perCore) return 'cpu_usage_ratio{mode="idle",cpu!="total"}';
    const sp = this.spec;
    if (!sp.series || sp.series.length !== 1 || sp.limit || sp.parts) return null;
    const m = [];
    for (const [o, op] of [[sp.include, '='], [sp.exclude, '!=']]) {
      for (const [k, v] of Object.entries(o || {})) {
        if (!/^[a-zA-Z_]\w*$/.test(k) || !/^[\w:/@ -]*$/.test(v)) return null;
        m.push(k + op + JSON.stringify(v));
      }
    }
    return sp.series[0] + (m.length ? '{' + m.join(',') + '}' : '');
  }

  // admit: whether the panel keeps a series, and how.
  admit(name, labels) {
    const n = this.node();
    if (n && labels.node !== undefined && labels.node !== n) return null;
    if (this.perCore) return name === 'cpu_usage_ratio' && labels.mode === 'idle' && labels.cpu !== 'total' && 'cpu' in labels ? { map: (v) => 1 - v } : null;
    const sp = this.spec;
    const parts = sp.parts || [];
    const ref = !sp.series?.includes(name) && (name === sp.limit || parts.some((p) => p.limit === name) || this.thresholds.some((t) => t.of === name));
    if (!ref && sp.series && !sp.series.includes(name) && !parts.some((p) => p.series.includes(name))) return null;
    for (const [k, r] of sp.inc) if (!r.test(labels[k] ?? '')) return null;
    for (const [k, r] of sp.exc) if (r.test(labels[k] ?? '')) return null;
    return { ref };
  }

  // rank: configured order of names, then natural order (load1, load5, load15).
  rank(s) {
    const sp = this.spec;
    const all = [...(sp.series || []), ...(sp.parts || []).flatMap((p) => p.series)];
    const i = all.indexOf(s.name);
    return [i < 0 ? all.length : i, s.name, Object.keys(s.labels).sort().map((k) => s.labels[k]).join('\u0000')];
  }

  // load replaces the data with a /api/v1/query answer (hidden series stay hidden).
  load(q) {
    const last = parseId(q.last);
    this.lastSeq = last ? last.seq : -1;
    this.epoch = last ? last.epoch : null;
    this.xs = (q.data && q.data[0] ? q.data[0] : []).slice();
    this.step = q.step > 1 ? q.step : 0;
    this.lastT = this.xs.length ? this.xs[this.xs.length - 1] : -Infinity;
    this.series = [];
    this.byKey = new Map();
    this.omitted = 0;
    this.rebuild = true;
    (q.series || []).forEach((s, i) => {
      const ser = this.ensure(s.name, s.labels, s.unit);
      if (!ser) return;
      ser.col = (q.data[i + 1] || []).map((v) => (v === null ? null : ser.map ? ser.map(v) : v));
      ser.last = lastOf(ser.col);
    });
    // The newest bucket takes the live frames of its time too.
    this.open = this.step && this.xs.length ? this.xs[this.xs.length - 1] : null;
    for (const ser of this.series) ser.n = ser.col.length && ser.col[ser.col.length - 1] !== null ? 1 : 0;
    this.seqs = [];
    this.state = 'ready';
    const queued = this.queue;
    this.queue = [];
    for (const f of queued) this.push(f);
    this.trim();
    this.dirty = true;
  }

  reloading() { this.state = 'loading'; }

  setHidden(hidden) {
    this.hidden = hidden;
    this.el.classList.toggle('hidden', hidden);
    this.hideBtn.textContent = hidden ? 'Show' : 'Hide';
    if (hidden) { this.queue = []; this.state = 'hidden'; this.checkLevel(); } else this.dirty = true;
  }

  // ensure returns the series of (name, labels), added if new and kept.
  ensure(name, labels, unit) {
    const key = seriesKey(name, labels);
    let s = this.byKey.get(key);
    if (s !== undefined) return s;
    labels = labels || {};
    const a = this.admit(name, labels);
    if (!a || (!a.ref && this.series.filter((x) => !x.ref).length >= maxSeries)) {
      if (a) this.omitted++;
      this.byKey.set(key, null);
      return null;
    }
    s = { key, name, labels, unit: this.perCore ? 'ratio' : this.spec.unit || unitKind(unit, name), ref: a.ref, map: a.map, col: new Array(this.xs.length).fill(null), last: null, n: 0 };
    const r = this.rank(s);
    let i = this.series.length;
    while (i > 0) {
      const q = this.rank(this.series[i - 1]);
      if ((q[0] - r[0] || natural(q[1], r[1]) || natural(q[2], r[2])) <= 0) break;
      i--;
    }
    this.series.splice(i, 0, s);
    this.byKey.set(key, s);
    this.rebuild = true;
    return s;
  }

  set(s, v, mean) {
    if (typeof v !== 'number') return;
    if (s.map) v = s.map(v);
    const i = s.col.length - 1;
    const cur = s.col[i];
    if (mean && cur !== null) { s.n = (s.n || 1) + 1; v = cur + (v - cur) / s.n; } else s.n = 1;
    s.col[i] = v;
    s.last = v;
    if (s.idle && v) this.rebuild = true;
  }

  // push appends a live frame; false when dropped (seq <= last, other epoch, zoomed).
  push(f) {
    if (this.state !== 'ready') { this.queue.push(f); return true; }
    if (this.xr) return false;
    const id = parseId(f.id);
    if (!id) return false;
    if (this.epoch !== null && id.epoch !== this.epoch) return false;
    if (id.seq <= this.lastSeq) { this.dups++; return false; }
    this.lastSeq = id.seq;
    this.epoch = id.epoch;
    const t = f.ts / 1000;
    const lastX = this.xs.length ? this.xs[this.xs.length - 1] : -Infinity;
    const gap = this.intervalMs > 0 && lastX > 0 && t - (this.step ? this.lastT : lastX) > (3 * this.intervalMs) / 1000;
    const b = this.step ? Math.floor(t / this.step) * this.step : t;
    const last = this.xs.length - 1;
    if (this.step && this.open !== null && b === this.open && last >= 0 && this.xs[last] === b) {
      for (const smp of f.samples || []) { const s = this.ensure(smp.name, smp.labels); if (s) this.set(s, smp.value, true); }
    } else {
      const x = b > lastX ? b : lastX + 0.001;
      // No frame for three intervals: a null breaks the line.
      if (gap) {
        this.xs.push(this.step ? lastX + (x - lastX) / 2 : lastX + this.intervalMs / 1000);
        for (const s of this.series) s.col.push(null);
      }
      if (this.step) this.open = x === b ? b : null;
      this.xs.push(x);
      for (const s of this.series) { s.col.push(null); s.n = 0; }
      for (const smp of f.samples || []) { const s = this.ensure(smp.name, smp.labels); if (s) this.set(s, smp.value, false); }
    }
    this.lastT = Math.max(this.lastT, t);
    this.seqs.push(id.seq);
    if (this.seqs.length > maxSeqs) this.seqs.splice(0, this.seqs.length - maxSeqs);
    if (this.xs.length % 64 === 0) this.trim();
    this.dirty = true;
    return true;
  }

  trim() {
    if (!this.xs.length || this.xr) return;
    const min = this.xs[this.xs.length - 1] - this.windowSec * 1.05;
    let i = 0;
    while (i < this.xs.length && this.xs[i] < min) i++;
    if (i === 0) return;
    this.xs.splice(0, i);
    for (const s of this.series) s.col.splice(0, i);
    this.marks = this.marks.filter((m) => m >= min);
  }

  mark(tSec) { this.marks.push(tSec); this.dirty = true; }

  // xrange: the zoom, or the window up to the newest frame of any topic (in
  // steps of the back-fill's buckets: the axes move once per bucket).
  xrange(max) {
    if (this.xr) return this.xr;
    const q = this.step || 1;
    const hi = Math.max(max ?? -Infinity, Math.floor(this.now() / q) * q);
    return [hi - this.windowSec, hi];
  }

  ref(name) {
    for (const s of this.series) if (s.name === name) return s.last;
    return null;
  }

  labelFor(s, all) {
    if (this.perCore) return 'cpu' + clean(s.labels.cpu);
    const ks = Object.keys(s.labels).sort(natural);
    if (!this.spec.short) return s.name + (ks.length ? '{' + ks.map((k) => k + '=' + quote(s.labels[k])).join(', ') + '}' : '');
    const fixed = new Set(Object.entries(this.spec.include || {}).filter(([, v]) => /^[\w-]*$/.test(v)).map(([k]) => k));
    if (this.node()) fixed.add('node');
    const vals = ks.filter((k) => !fixed.has(k)).map((k) => clean(s.labels[k]));
    if (all.every((x) => x.name === s.name) && vals.length) return vals.join(' ');
    const short = s.name.replace(this.topic + '_', '').replace(/_(bytes_per_second|per_second|bytes|seconds|ratio|total)$/, '');
    return [short, ...vals].join(' ');
  }

  // layout: views of one or two y axes each; parts (swap) on their own.
  layout() {
    const sp = this.spec;
    const drawn = this.series.filter((s) => !s.ref);
    let idle = 0;
    for (const s of drawn) {
      s.idle = !!sp.idle && !this.perCore && sp.idle.test(s.labels.device || '') && s.col.every((v) => !v);
      if (s.idle) idle++;
      s.label = this.labelFor(s, drawn);
    }
    if (this.idleBtn) {
      this.idleBtn.hidden = !idle;
      this.idleBtn.textContent = `${idle} idle`;
      this.idleBtn.title = 'interfaces without traffic in the window';
    }
    const shown = drawn.filter((s) => !s.idle || this.showIdle);
    shown.forEach((s, i) => { s.color = (sp.colors && sp.colors[s.name]) || palette[i % palette.length]; });
    const parts = this.perCore ? [] : sp.parts || [];
    const partOf = (s) => parts.find((p) => p.series.includes(s.name));
    const stack = !!sp.stack && !this.perCore && this.node() !== '';
    const main = shown.filter((s) => !partOf(s));
    this.split = !stack && sp.axes !== 'shared';
    const groups = clusters(main, this.split);
    this.main = main;
    this.gkey = gkey(groups);
    this.views = [];
    this.notes = [];
    const per = sp.axes === 'separate' ? 1 : 2;
    for (let i = 0; i < groups.length; i += per) {
      this.views.push(new View(this, groups.slice(i, i + per), { height: i ? 150 : 220, stack, limit: sp.limit, max: sp.max || (this.perCore ? 1 : 0) }));
    }
    for (const p of parts) {
      const ss = shown.filter((s) => partOf(s) === p);
      if (!ss.length || !(this.ref(p.limit) > 0)) { if (p.none && this.ref(p.limit) === 0) this.notes.push(p.none); continue; }
      this.views.push(new View(this, [ss], { height: 110, stack, limit: p.limit, title: p.title }));
    }
    // thresholds: per series, or on the stack's top
    for (const v of this.views) {
      v.thr = [];
      for (const t of this.thresholds) {
        const ss = v.series.filter((s) => picks(t, s));
        if (!ss.length) continue;
        const key = v.axes[0].includes(ss[0]) ? 'y' : 'y2';
        if (stack) v.thr.push({ t, key, ss, sum: true });
        else for (const s of ss) v.thr.push({ t, key, ss: [s] });
      }
    }
  }

  render() {
    if (!this.dirty || this.state !== 'ready') return false;
    this.dirty = false;
    const t0 = performance.now();
    try { return this.draw(); } finally { this.lastRenderMs = performance.now() - t0; }
  }

  draw() {
    // width from the ResizeObserver: clientWidth would force a layout
    if (!this.width) this.width = this.body.clientWidth;
    const width = Math.max(200, this.width || 400);
    if (this.rebuild || !this.built) {
      this.rebuild = false;
      this.built = true;
      this.builds++;
      for (const v of this.views) v.destroy();
      this.body.textContent = '';
      this.layout();
      if (!this.views.length) {
        const p = document.createElement('p');
        p.className = 'empty';
        p.textContent = this.series.some((s) => !s.ref) ? 'no data in the window' : 'waiting for data…';
        this.body.append(p);
      }
      for (const v of this.views) { this.body.append(v.el); v.build(width); }
    } else if (++this.ticks % 5 === 0 && gkey(clusters(this.main, this.split)) !== this.gkey) {
      // magnitudes moved apart (or together): new axes
      this.rebuild = true;
      return this.draw();
    } else {
      for (const v of this.views) v.update();
    }
    const note = [...this.notes, this.omitted ? `${this.omitted} more series not drawn` : ''].filter(Boolean).join(' · ');
    if (this.note.textContent !== note) this.note.textContent = note;
    this.checkLevel();
    if (this.meters) this.renderMeters();
    return true;
  }

  // checkLevel marks the panel when a newest value crosses a threshold.
  checkLevel() {
    let lvl = 0;
    let what = '';
    for (const v of this.hidden ? [] : this.views) {
      for (const th of v.thr) {
        const ss = th.ss.filter((s) => !this.hiddenKeys.has(s.key));
        if (!ss.length) continue;
        const val = (th.sum ? ss.reduce((a, s) => a + (s.last || 0), 0) : ss[0].last) / (th.t.of ? this.ref(th.t.of) || NaN : 1);
        const l = levelOf(th.t, val);
        // the level crossed, not the value: text that changes only with it
        if (l > lvl) { lvl = l; what = `${th.sum ? this.spec.title || th.t.series : ss[0].label} ${levelDown(th.t) ? '≤' : '≥'} ${fmt(th.t[l > 1 ? 'critical' : 'warning'], th.t.of ? 'ratio' : ss[0].unit)}`; }
      }
    }
    const level = ['', 'warning', 'critical'][lvl];
    const text = level && `${level}: ${what}`;
    if (this.alert.textContent !== text) {
      this.alert.textContent = text;
      this.alert.hidden = !level;
    }
    if (level !== this.level) {
      this.el.classList.remove('lvl-' + this.level);
      if (level) this.el.classList.add('lvl-' + level);
      this.level = level;
    }
  }

  // renderMeters: a row per ratio series; the DOM is touched only on change.
  renderMeters() {
    const ratios = this.views.flatMap((v) => v.series).filter((s) => s.unit === 'ratio');
    const rows = this.meterRows || (this.meterRows = []);
    while (rows.length > ratios.length) rows.pop().row.remove();
    ratios.forEach((s, k) => {
      const v = s.last;
      let r = rows[k];
      if (!r) {
        const row = document.createElement('label');
        row.className = 'meter';
        const name = document.createElement('span');
        const m = document.createElement('meter');
        m.min = 0; m.max = 1; m.optimum = 0;
        const val = document.createElement('span');
        row.append(name, m, val);
        this.meters.append(row);
        r = rows[k] = { row, name, m, val, label: null, v: undefined };
      }
      if (r.label !== s.label) {
        r.label = s.label;
        r.name.textContent = s.label;
        const t = this.thresholds.find((x) => picks(x, s));
        r.m.low = t ? t.warning : 0.8;
        r.m.high = t ? t.critical : 0.9;
      }
      if (r.v !== v) { r.v = v; r.m.value = v ?? 0; r.val.textContent = fmt(v, 'ratio'); }
    });
  }

  resize(width) {
    if (width > 0) this.width = Math.floor(width);
    for (const v of this.views) if (v.u) v.u.setSize({ width: Math.max(200, this.width || this.body.clientWidth), height: v.o.height });
  }

  redraw() { for (const v of this.views) if (v.u) v.u.redraw(false, true); }

  debug() {
    const views = this.views.filter((v) => v.u).map((v) => v.debug());
    return {
      id: this.id, title: this.spec.title, topic: this.topic, level: this.level,
      state: this.state, points: this.xs.length, series: this.series.filter((s) => !s.ref).length, lastSeq: this.lastSeq,
      epoch: this.epoch, seqs: this.seqs.slice(), dups: this.dups, marks: this.marks.length,
      firstX: this.xs[0] ?? null, lastX: this.xs[this.xs.length - 1] ?? null,
      firstDataX: this.xs.find((x, i) => this.series.some((s) => s.col[i] !== null)) ?? null,
      monotonic: this.xs.every((x, i) => i === 0 || x > this.xs[i - 1]),
      labels: this.views.flatMap((v) => v.series.map((s) => s.label)), builds: this.builds, lastRenderMs: this.lastRenderMs,
      hidden: this.series.filter((s) => this.hiddenKeys.has(s.key)).map((s) => s.label),
      drawnHidden: views.reduce((a, v) => a + v.hidden, 0),
      idle: this.series.filter((s) => s.idle).map((s) => s.label),
      refs: Object.fromEntries(this.series.filter((s) => s.ref).map((s) => [s.name, s.last])),
      views,
    };
  }
}

// picks: the threshold's series (labels all match, no exclude does)
const picks = (t, s) => s.name === t.series && t.m.every(([k, r]) => r.test(s.labels[k] ?? '')) && !t.x.some(([k, r]) => r.test(s.labels[k] ?? ''));
const levelDown = (t) => t.below || (t.warning != null && t.critical != null && t.critical < t.warning);
function levelOf(t, v) {
  if (v === null || v === undefined) return 0;
  const down = levelDown(t);
  const over = (lim) => lim != null && (down ? v <= lim : v >= lim);
  return over(t.critical) ? 2 : over(t.warning) ? 1 : 0;
}

// View: one uPlot chart of a panel (axes: one or two arrays of series) and its layer.
class View {
  constructor(p, axes, o) {
    this.p = p;
    this.axes = axes;
    this.series = axes.flat();
    this.o = o;
    this.ranges = {};
    this.sizes = {};
    this.lay = null;
    this.u = null;
    this.thr = [];
    this.el = document.createElement('div');
    this.el.className = 'view';
    if (o.title) {
      const t = document.createElement('div');
      t.className = 'sub';
      t.textContent = o.title;
      this.el.append(t);
    }
  }

  build(width) { this.u = new (U())(this.opts(width), this.data(), this.el); this.showLatest(this.u); }

  destroy() { if (this.u) this.u.destroy(); this.u = null; }

  // update: setData drawn now, the legend on the newest values unless hovered.
  update() {
    const u = this.u;
    u.batch(() => {
      u.setData(this.data());
      if (!(u.cursor.left >= 0)) u.setLegend({ idx: this.p.xs.length - 1 });
    });
  }

  // data: stacked, running sums; bases[i] is the stack under series i.
  data() {
    const { xs, hiddenKeys } = this.p;
    if (!this.o.stack) return [xs, ...this.series.map((s) => s.col)];
    const n = xs.length;
    let acc = new Float64Array(n);
    const out = [xs];
    this.bases = [null];
    for (const s of this.series) {
      if (hiddenKeys.has(s.key)) { out.push(s.col); this.bases.push(null); continue; }
      const below = acc;
      acc = new Float64Array(below);
      const c = new Array(n);
      for (let i = 0; i < n; i++) { const v = s.col[i]; c[i] = v === null ? null : (acc[i] += v); }
      out.push(c);
      this.bases.push(below);
    }
    return out;
  }

  opts(width) {
    const p = this.p;
    const o = this.o;
    const series = [{ value: (u, v) => (v === null ? '—' : (u.scales.x.max - u.scales.x.min > 43200 ? dateFmt : clockFmt).format(v * 1000)) }];
    this.axes.forEach((ss, k) => {
      for (const s of ss) {
        series.push({
          label: s.label, scale: k ? 'y2' : 'y', stroke: s.color, width: 1,
          fill: o.stack ? s.color + '55' : undefined, show: !p.hiddenKeys.has(s.key),
          spanGaps: false, paths: noPaths, points: { show: false },
          value: (u, v, si, idx) => fmt(u.cursor.left >= 0 && idx !== null && idx !== undefined ? s.col[idx] : s.last, s.unit),
        });
      }
    });
    const grid = { stroke: () => colors.grid, width: 1 };
    const stroke = () => colors.fg;
    const axes = [{
      stroke, grid, ticks: grid, space: 1,
      incrs: (u, ai, min, max, dim) => [timeStep(max - min, dim)],
      splits: (u, ai, min, max, step) => timeSplits(min, max, step),
      values: (u, t, ai, sp, step) => t.map((v) => timeLabel(v, step)),
    }];
    const scales = { x: { time: true, range: (u, min, max) => p.xrange(max) } };
    this.axes.forEach((ss, k) => {
      const key = k ? 'y2' : 'y';
      const unit = ss[0].unit;
      scales[key] = { range: (u, min, max) => this.yrange(key, unit, min, max) };
      axes.push({
        scale: key, side: k ? 1 : 3, stroke, grid: k ? { show: false } : grid, ticks: grid, space: 28,
        incrs: incrsOf(unit),
        splits: (u, ai, min, max, step) => splits(min, max, step),
        values: (u, t, ai, sp, step) => t.map(tickFmt(unit, step)),
        size: (u, values) => this.size(key, values),
      });
    });
    return {
      width, height: o.height,
      cursor: {
        sync: { key: 'livedash', setSeries: false, filters: { pub: (type) => type !== 'mousedown' && type !== 'mouseup' } },
        points: { show: false }, drag: { x: true, y: false, setScale: false },
      },
      legend: { live: true }, scales, series, axes,
      hooks: {
        draw: [(u) => { this.drawLayer(u); this.drawLines(u); }],
        setSeries: [(u, i, opt) => {
          // legend click: remembered per key
          if (i && opt && 'show' in opt) {
            const s = this.series[i - 1];
            if (opt.show) p.hiddenKeys.delete(s.key); else p.hiddenKeys.add(s.key);
            if (o.stack) p.dirty = true;
            p.schedule();
          }
        }],
        setCursor: [(u) => { if (u.cursor.idx === null || u.cursor.idx === undefined) this.showLatest(u); }],
        // drag to zoom: every chart follows (main.js)
        setSelect: [(u) => {
          const { left, width: w } = u.select;
          if (w < 5) return;
          const a = u.posToVal(left, 'x');
          const b = u.posToVal(left + w, 'x');
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          if (p.onZoom) p.onZoom(a, b);
        }],
      },
    };
  }

  // size: fits the longest label; never shrinks, so the plot keeps its width.
  size(key, values) {
    let n = 0;
    for (const v of values || []) if (v && v.length > n) n = v.length;
    const w = Math.ceil((18 + n * 7.5) / 8) * 8;
    if (!(this.sizes[key] >= w)) this.sizes[key] = w;
    return this.sizes[key];
  }

  // yrange: up/down 0..1; a limit series (memory total); a maximum that fits (CPU); else sticky.
  yrange(key, unit, min, max) {
    const o = this.o;
    if (unit === 'up') return [-0.05, 1.05];
    if (key === 'y' && o.limit) { const l = this.p.ref(o.limit); if (l > 0) return [0, l]; }
    if (o.max && min >= 0 && max <= o.max) return [0, o.max];
    const r = this.sticky(key, unit, min, max);
    return unit === 'ratio' && max <= 1 && r[1] > 1 ? [r[0], 1] : r; // never past 100 % unneeded
  }

  // sticky: 0 to a round top ≥ 5 % above the data; grows at once, shrinks below half.
  sticky(key, unit, min, max) {
    const r = this.ranges[key] || (this.ranges[key] = { lo: 0, hi: 0 });
    const hi = max > 0 ? max * 1.05 : 0;
    if (!r.hi || hi > r.hi || hi < r.hi / 2) r.hi = niceTop(hi > r.hi ? hi : hi * 1.25, unit);
    const lo = min < 0 ? -min * 1.05 : 0;
    if (lo > -r.lo || lo < -r.lo / 2) r.lo = lo > 0 ? -niceTop(lo > -r.lo ? lo : lo * 1.25, unit) : 0;
    return [r.lo, r.hi];
  }

  // drawLayer: the retained layer over uPlot's canvas; with only new points it
  // shifts and redraws the strip from the point before the last drawn one.
  drawLayer(u) {
    let cv = this.cv;
    if (!cv || cv.parentNode !== u.over) {
      cv = this.cv = document.createElement('canvas');
      cv.className = 'series-layer';
      u.over.prepend(cv);
      this.ctx = cv.getContext('2d');
      this.lay = null;
    }
    const { width: W, height: H } = u.bbox;
    if (cv.width !== W || cv.height !== H) { cv.width = W; cv.height = H; this.lay = null; }
    const ctx = this.ctx;
    const xs = u.data[0];
    const n = xs ? xs.length : 0;
    const sx = u.scales.x;
    if (!n || !(W > 0 && H > 0) || sx.min === null || sx.max === null) { ctx.clearRect(0, 0, W, H); this.lay = null; return; }
    const kx = W / (sx.max - sx.min || 1);
    const X = -sx.min * kx;
    const dots = !this.o.stack && n * 12 < W / devicePixelRatio;
    let sig = dots ? 'd' : '';
    for (let i = 1; i < u.series.length; i++) sig += u.series[i].show ? '1' : '0';
    for (const k of ['y', 'y2']) { const sc = u.scales[k]; if (sc) sig += '|' + sc.min + ',' + sc.max; }
    const L = this.lay;
    let full = !L || L.kx !== kx || L.sig !== sig || L.colors !== colors || L.draws >= fullEvery;
    let B = X;
    let from = 0;
    let i0 = 0;
    const M = 3 + Math.ceil(this.dotR());
    if (!full) {
      const shift = Math.round(L.B - X);
      B = L.B - shift;
      let j = n - 1;
      while (j > 0 && xs[j] > L.lastX) j--;
      const col = (i) => Math.round(B + xs[i] * kx);
      from = j >= 1 ? col(j - 1) - M : -1;
      if (shift < 0 || shift >= W || from <= 0 || from >= W) full = true;
      else {
        i0 = j - 1;
        while (i0 > 0 && col(i0) >= from - M) i0--;
        if (shift) {
          ctx.globalCompositeOperation = 'copy';
          ctx.drawImage(cv, -shift, 0);
          ctx.globalCompositeOperation = 'source-over';
        }
      }
    }
    ctx.save();
    if (full) {
      B = X; from = 0; i0 = 0;
      ctx.clearRect(0, 0, W, H);
    } else {
      ctx.clearRect(from, 0, W - from, H);
      ctx.beginPath();
      ctx.rect(from, 0, W - from, H);
      ctx.clip();
    }
    this.paint(ctx, u, B, kx, i0, dots);
    ctx.restore();
    this.lay = { kx, sig, colors, B, dots, lastX: xs[n - 1], draws: full ? 0 : L.draws + 1, full: (L ? L.full : 0) + (full ? 1 : 0) };
  }

  dotR() { return 2.5 * devicePixelRatio; }

  paint(ctx, u, B, kx, i0, dots) {
    const { width: W, height: H } = u.bbox;
    const xs = u.data[0];
    const lw = Math.round(devicePixelRatio * 1000) / 1000;
    const off = (lw % 2) / 2;
    ctx.translate(off, off);
    ctx.lineWidth = lw;
    ctx.lineJoin = 'round';
    ctx.lineCap = 'butt';
    for (let i = 1; i < u.series.length; i++) {
      const s = u.series[i];
      if (!s.show) continue;
      const sy = u.scales[s.scale];
      const ky = H / (sy.max - sy.min || 1);
      const p = seriesPaths(xs, u.data[i], this.bases && this.bases[i], B, kx, H + sy.min * ky, ky, i0, xs.length - 1, this.dotR(), dots);
      const color = this.series[i - 1].color;
      if (p.fill) { ctx.fillStyle = color + '55'; ctx.fill(p.fill); }
      ctx.strokeStyle = color;
      ctx.stroke(p.stroke);
      ctx.fillStyle = color;
      ctx.fill(p.dot);
    }
  }

  showLatest(u) {
    const n = this.p.xs.length;
    if (n && u.cursor.left < 0) u.setLegend({ idx: n - 1 });
  }

  // drawLines: resets and gaps; threshold levels.
  drawLines(u) {
    if (!this.p.marks.length && !this.thr.length) return;
    const { ctx, bbox } = u;
    ctx.save();
    ctx.lineWidth = devicePixelRatio;
    ctx.setLineDash([4 * devicePixelRatio, 4 * devicePixelRatio]);
    const line = (c, x0, y0, x1, y1) => { ctx.strokeStyle = c; ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke(); };
    for (const m of this.p.marks) {
      const x = Math.round(u.valToPos(m, 'x', true));
      if (x >= bbox.left && x <= bbox.left + bbox.width) line(colors.mark, x, bbox.top, x, bbox.top + bbox.height);
    }
    for (const th of this.thr) {
      for (const [lvl, c] of [['warning', colors.warn], ['critical', colors.bad]]) {
        if (th.t[lvl] === null || th.t[lvl] === undefined) continue;
        const y = Math.round(u.valToPos(th.t[lvl] * (th.t.of ? this.p.ref(th.t.of) || NaN : 1), th.key, true));
        if (y >= bbox.top && y <= bbox.top + bbox.height) line(c, bbox.left, y, bbox.left + bbox.width, y);
      }
    }
    ctx.restore();
  }

  debug() {
    const u = this.u;
    return {
      x: [u.scales.x.min, u.scales.x.max],
      axes: u.axes.map((a) => ({ scale: a.scale, min: u.scales[a.scale].min, max: u.scales[a.scale].max, ticks: (a._values || []).filter((v) => v !== null), splits: a._splits || [] })),
      labels: this.series.map((s) => s.label), colors: this.series.map((s) => s.color), units: this.series.map((s) => s.unit),
      hidden: u.series.slice(1).filter((s) => !s.show).length, layer: this.cv ? [this.cv.width, this.cv.height] : null,
      bbox: [u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height], thresholds: this.thr.length,
    };
  }
}
