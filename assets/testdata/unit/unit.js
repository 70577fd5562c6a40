// Unit tests of the client modules, run in headless Chromium by
// assets_test.go (TestClientUnit). Results land in window.__results.
import { SSEParser, backoffDelay, parseId, Hub } from '/js/client.js';
import { Panel, refreshTheme, makeSpec } from '/js/charts.js';
import { fmt, tickFmt, niceTop, incrsOf, timeStep, natural, quote, unitKind } from '/js/format.js';

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
function eq(a, b, msg) {
  const ja = JSON.stringify(a), jb = JSON.stringify(b);
  if (ja !== jb) throw new Error(`${msg || 'not equal'}: got ${ja}, want ${jb}`);
}
function ok(c, msg) { if (!c) throw new Error(msg || 'assertion failed'); }
const E = '0123456789abcdef';
const id = (seq, ep = E) => `${ep}-${seq}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(fn, ms, what) {
  const end = performance.now() + ms;
  while (performance.now() < end) { if (fn()) return; await sleep(20); }
  throw new Error('timed out waiting for ' + what);
}

// ---- parseId (over-long, control characters, signs, overflow: not IDs) ----
test('parseId', () => {
  eq(parseId(id(42)), { epoch: E, seq: 42 });
  eq(parseId(id(0)), { epoch: E, seq: 0 });
  for (const bad of ['', 'abc', '-1', E + '--1', E + '-01', E + '-18446744073709551616', E.toUpperCase() + '-1',
    E + '-1\n', E + '-1 ', 'x'.repeat(65), E.slice(1) + '-1', null, undefined, 42]) {
    eq(parseId(bad), null, 'parseId(' + JSON.stringify(bad) + ')');
  }
});

// ---- SSE parser ----
const sample = 'retry: 1500\r\n: hb ' + id(7) + ' 1764255600123\r\n\r\nevent: hello\ndata: {"epoch":"' + E +
  '"}\n\nid: ' + id(8) + '\revent: frame\rdata: {"a":\rdata: 1}\r\r' + ': comment\n\n' +
  'event: frame\ndata\n\nid\ndata: x\n\nfield-without-value\nid: bad\0id\ndata:y\n\nevent: nodata\nid: ' + id(9) + '\n\n' +
  'data: after\n\n';
const want = [
  ['retry', 1500], ['comment', 'hb ' + id(7) + ' 1764255600123'],
  ['event', 'hello', '{"epoch":"' + E + '"}', ''],
  ['event', 'frame', '{"a":\n1}', id(8)],
  ['comment', 'comment'],
  ['event', 'frame', '', id(8)],
  ['event', 'message', 'x', ''],
  ['event', 'message', 'y', ''],
  ['event', 'message', 'after', id(9)],
];
function parseAll(chunks) {
  const got = [];
  const p = new SSEParser({
    onEvent: (e) => got.push(['event', e.type, e.data, e.id]),
    onComment: (c) => got.push(['comment', c]),
    onRetry: (ms) => got.push(['retry', ms]),
  });
  for (const c of chunks) p.push(c);
  return got;
}
test('SSEParser whole', () => eq(parseAll([sample]), want));
test('SSEParser every split point', () => {
  for (let i = 0; i <= sample.length; i++) eq(parseAll([sample.slice(0, i), sample.slice(i)]), want, 'split at ' + i);
});
test('SSEParser one char at a time', () => eq(parseAll([...sample]), want));
test('SSEParser keeps data with U+2028 and markup as text', () => {
  const got = parseAll(['data: <img src=x onerror=window.__x=1>\u2028\u202e\n\n']);
  eq(got, [['event', 'message', '<img src=x onerror=window.__x=1>\u2028\u202e', '']]);
});

// ---- backoff ----
test('backoffDelay full jitter, doubling, cap', () => {
  eq(backoffDelay(0, 2000, 30000, () => 1), 2000);
  eq(backoffDelay(1, 2000, 30000, () => 1), 4000);
  eq(backoffDelay(3, 2000, 30000, () => 1), 16000);
  eq(backoffDelay(4, 2000, 30000, () => 1), 30000);
  eq(backoffDelay(60, 2000, 30000, () => 1), 30000);
  eq(backoffDelay(5, 2000, 30000, () => 0), 0);
  eq(backoffDelay(0, 60000, 30000, () => 1), 60000, 'a long server retry: is honoured above the cap');
  for (let i = 0; i < 200; i++) { const d = backoffDelay(2, 1000, 30000); ok(d >= 0 && d <= 4000, 'range ' + d); }
});

// ---- hub: dedupe, buffer, need/gap ----
function fr(seq, topic = 'cpu', ep = E) { return { id: id(seq, ep), topic, ts: Date.now(), samples: [] }; }
function fakeSub() { const s = { msgs: [], post(m) { s.msgs.push(m); } }; return s; }
const seqsOf = (sub) => sub.msgs.filter((m) => m.type === 'frames').flatMap((m) => m.frames.map((f) => parseId(f.id).seq));

test('hub delivers in order, once', () => {
  const h = new Hub({ bufferFrames: 5 });
  h.started = true; h.epoch = E; h.lastSeq = 10; h.floor = 10;
  const s = fakeSub(); h.add(s);
  h.deliver([fr(9), fr(10), fr(11), fr(12)]);
  h.deliver([fr(12), fr(13), fr(11)]);
  h.deliver([fr(14, 'cpu', 'ffffffffffffffff')]); // other epoch without a reset: dropped
  eq(seqsOf(s), [11, 12, 13]);
  eq(h.stats.dups, 4);
  eq(h.cursor, id(13));
});
test('hub need: buffer serves joiners, gap when evicted or other epoch', () => {
  const h = new Hub({ bufferFrames: 5 });
  h.started = true; h.epoch = E; h.lastSeq = 10; h.floor = 10;
  h.add(fakeSub());
  h.deliver([11, 12, 13, 14, 15, 16, 17].map((n) => fr(n)));
  eq(h.floor, 12, 'floor after eviction');
  const a = fakeSub(); h.add(a); h.need(a, id(14)); eq(seqsOf(a), [15, 16, 17]);
  const b = fakeSub(); h.add(b); h.need(b, id(12)); eq(seqsOf(b), [13, 14, 15, 16, 17]);
  const c = fakeSub(); h.add(c); h.need(c, id(11)); ok(c.msgs.some((m) => m.type === 'gap'), 'gap for evicted');
  const d = fakeSub(); h.add(d); h.need(d, id(14, 'ffffffffffffffff')); ok(d.msgs.some((m) => m.type === 'gap'), 'gap for epoch');
  const e = fakeSub(); h.add(e); h.need(e, id(17)); eq(seqsOf(e), []);
});
test('hub reset: resumes at the stated head, drops the buffer', () => {
  const h = new Hub({});
  h.started = true; h.epoch = E; h.lastSeq = 10; h.floor = 10;
  const s = fakeSub(); h.add(s);
  h.deliver([fr(11)]);
  const N = 'fedcba9876543210';
  h.onReset({ reason: 'unknown_epoch', requested: id(11), oldest: id(1, N), head: id(3, N) });
  ok(s.msgs.some((m) => m.type === 'reset'), 'reset broadcast');
  eq([h.epoch, h.lastSeq, h.cursor, h.buffer.length], [N, 3, id(3, N), 0]);
  h.deliver([fr(3, 'cpu', N), fr(4, 'cpu', N)]);
  eq(seqsOf(s), [11, 4]);
});

// ---- panel: the back-fill/stream seam ----
// The server's built-in panels as GET /api/v1/dashboard lists them
// (config.BuiltinPanels), the ones these tests draw.
const builtin = [
  { id: 'cpu', title: 'CPU', topic: 'cpu', series: ['cpu_usage_ratio'], include: { cpu: 'total' }, exclude: { mode: 'idle' }, unit: 'ratio', stack: true, axes: 'shared' },
  { id: 'memory', title: 'Memory', topic: 'memory', series: ['memory_used_bytes', 'memory_buffers_bytes', 'memory_cached_bytes', 'memory_free_bytes'], unit: 'bytes', stack: true, axes: 'shared' },
  { id: 'load', title: 'Load average', topic: 'load', series: ['load1', 'load5', 'load15'], unit: 'count', axes: 'shared' },
  { id: 'network', title: 'Network', topic: 'network', series: ['network_receive_bytes_per_second', 'network_transmit_bytes_per_second'], unit: 'bytes_per_second', axes: 'shared' },
  { id: 'system', title: 'System', topic: 'system', series: ['system_context_switches_per_second', 'system_interrupts_per_second', 'system_forks_per_second'], unit: 'per_second', axes: 'auto' },
];
const spec = (id) => makeSpec(builtin.find((b) => b.id === id));
function query(lastSeq, times, ep = E) {
  return {
    series: [{ name: 'cpu_usage_ratio', labels: { cpu: 'total', mode: 'user' }, topic: 'cpu', unit: 'ratio' }],
    labels: ['time', 'x'], data: [times, times.map(() => 0.5)], first: id(1, ep), last: id(lastSeq, ep), capped: false,
  };
}
function lf(seq, tSec, ep = E, extra = []) {
  return { id: id(seq, ep), topic: 'cpu', ts: tSec * 1000,
    samples: [{ name: 'cpu_usage_ratio', labels: { cpu: 'total', mode: 'user' }, value: 0.25 }, ...extra] };
}
test('panel seam: frames <= last dropped, later appended, queued while loading', () => {
  refreshTheme();
  const p = new Panel(spec('cpu'), document.getElementById('panels'), { windowSec: 300 });
  const t = Math.floor(Date.now() / 1000) - 10;
  p.push(lf(20, t + 1)); p.push(lf(21, t + 2)); p.push(lf(22, t + 3)); // queued: loading
  p.load(query(21, [t - 2, t - 1, t]));
  eq(p.debug().seqs, [22]);
  p.push(lf(22, t + 3)); p.push(lf(21, t + 2));
  p.push(lf(23, t + 4, E, [{ name: 'cpu_usage_ratio', labels: { cpu: 'total', mode: 'system' }, value: 0.1 }]));
  const d = p.debug();
  eq(d.seqs, [22, 23]); eq(d.points, 5); eq(d.series, 2); ok(d.monotonic, 'x increases'); eq(d.dups, 4, 'queued 20,21 and replayed 22,21');
  ok(p.render(), 'rendered');
  ok(p.u && p.u.data.length === 3, 'uPlot has x + 2 series');
  // stacked: the system line sits on top of user
  eq(p.u.data[2][4], 0.35);
  // a frame of another epoch is not drawn (the reset re-loads)
  ok(!p.push(lf(24, t + 5, 'ffffffffffffffff')), 'other epoch dropped');
});
test('panel breaks the line over a hole of more than three intervals', () => {
  const p = new Panel(spec('cpu'), document.getElementById('panels'), { windowSec: 300, intervalMs: 1000 });
  const t = Math.floor(Date.now() / 1000) - 30;
  p.load(query(10, [t - 1, t]));
  p.push(lf(11, t + 1)); p.push(lf(12, t + 2)); p.push(lf(13, t + 12)); // server down 10 s
  const d = p.debug();
  eq(d.seqs, [11, 12, 13]);
  eq(p.xs.slice(-4), [t + 1, t + 2, t + 3, t + 12]);
  eq(p.series[0].col.slice(-4), [0.25, 0.25, null, 0.25]);
});
test('panel buckets live frames at the back-fill step (mean per bucket, holes still break the line)', () => {
  const p = new Panel(spec('cpu'), document.getElementById('panels'), { windowSec: 900, intervalMs: 1000 });
  const t = Math.floor(Date.now() / 2000) * 2 - 40; // a bucket start
  p.load({ ...query(10, [t - 2, t]), step: 2 }); // the newest bucket holds 0.5
  const f = (seq, at, v) => ({ ...lf(seq, at), samples: [{ name: 'cpu_usage_ratio', labels: { cpu: 'total', mode: 'user' }, value: v }] });
  p.push(f(11, t + 1, 0.25)); // joins bucket t: mean of 0.5 and 0.25
  p.push(f(12, t + 2, 0.2)); p.push(f(13, t + 3.5, 0.4)); // bucket t+2
  p.push(f(14, t + 4, 0.1)); // bucket t+4
  p.push(f(15, t + 14, 0.3)); // a 10 s hole: null point, then bucket t+14
  eq(p.debug().seqs, [11, 12, 13, 14, 15]);
  eq(p.xs, [t - 2, t, t + 2, t + 4, t + 9, t + 14]);
  eq(p.series[0].col, [0.5, 0.375, 0.30000000000000004, 0.1, null, 0.3]);
  ok(p.debug().monotonic, 'x increases');
});
test('panel labels are text', () => {
  const p = new Panel(makeSpec({ id: 'xss', topic: 'xss' }, true), document.getElementById('panels'), { windowSec: 60 });
  const evil = '<img src=x onerror=window.__x=1>';
  p.load({ series: [{ name: 'm_' + 'x', labels: { l: evil }, unit: '' }], data: [[Date.now() / 1000 - 1], [1]], last: id(5) });
  p.push({ id: id(6), topic: 'xss', ts: Date.now(), samples: [{ name: evil, labels: { [evil]: evil }, value: 2 }] });
  p.render();
  ok(p.el.textContent.includes(evil), 'markup shown as text');
  ok(!p.el.querySelector('img'), 'no img element');
});
test('fmt units', () => {
  eq(fmt(0.1234, 'ratio'), '12.3 %'); eq(fmt(1536, 'bytes'), '1.5 KiB'); eq(fmt(0.0012, 'seconds'), '1.2 ms');
  eq(fmt(2048, 'bytes/s'), '2 KiB/s'); eq(fmt(null, 'bytes'), '—');
});


// ---- reading at a glance ----
const T0 = Math.floor(Date.now() / 1000) - 100;
const times = (n) => Array.from({ length: n }, (_, i) => T0 + i);
// answer: a query answer with one column per {name, labels, v} (v: value or fn(i))
function answer(n, cols, lastSeq = 50) {
  return { series: cols.map((c) => ({ name: c.name, labels: c.labels || {}, unit: c.unit || '' })), data: [times(n), ...cols.map((c) => times(n).map((_, i) => (typeof c.v === 'function' ? c.v(i) : c.v)))], last: id(lastSeq) };
}
// panelOf: a panel loaded with q and drawn (uPlot lays axes out in a microtask)
async function panelOf(sp, q, o = {}) {
  const p = new Panel(sp, document.getElementById('panels'), { windowSec: 300, ...o });
  p.load(q);
  p.render();
  await sleep(30);
  return p;
}
// round: the labels of an axis are whole multiples of a 1, 2 or 5 × 10^k step, in one unit
// (time steps: 15 and 30 s or min, 3, 6 and 12 h are round too)
function round(ticks, what) {
  ok(ticks.length >= 2, what + ': ticks ' + JSON.stringify(ticks));
  const nums = ticks.map((t) => parseFloat(t));
  const units = new Set(ticks.map((t) => t.replace(/^-?[\d.]+\s*/, '')));
  eq(units.size, 1, what + ': one unit in ' + JSON.stringify(ticks));
  const d = nums[1] - nums[0];
  const m = d / 10 ** Math.floor(Math.log10(d) + 1e-9);
  const unit = [...units][0];
  const ms = [1, 2, 5, ...(/^(s|min)$/.test(unit) ? [1.5, 3] : unit === 'h' ? [1.2, 3, 6] : [])];
  ok(ms.some((x) => Math.abs(m - x) < 1e-6), what + ': step ' + d + ' in ' + JSON.stringify(ticks));
  nums.forEach((v, i) => ok(Math.abs(v - nums[0] - i * d) < 1e-6 * d && Math.abs(v / d - Math.round(v / d)) < 1e-6, what + ': ' + JSON.stringify(ticks)));
}
test('tick labels: round steps in every unit', () => {
  const cases = [['bytes', 23.5 * 2 ** 30], ['bytes', 40e3], ['bytes/s', 19.5 * 1024], ['ratio', 0.004], ['ratio', 1], ['/s', 13650], ['/s', 224],
    ['seconds', 0.06], ['seconds', 200], ['seconds', 5000], ['', 0.3], ['', 15], ['status', 210], ['celsius', 71]];
  for (const [u, v] of cases) {
    const top = niceTop(v * 1.05, u);
    ok(top >= v && top <= v * 1.6 + 1, `niceTop(${v}, ${u}) = ${top}`);
    for (const px of [80, 170, 400]) {
      const step = incrsOf(u).find((x) => (x * px) / top >= 28);
      const ticks = [];
      for (let k = 0; k * step <= top * (1 + 1e-9); k++) ticks.push(tickFmt(u, step)(k * step));
      round(ticks, `${u} ${v} on ${px} px`);
    }
  }
  eq(tickFmt('status', 100)(200), '200');
  eq(tickFmt('up', 1)(1), 'up');
});
test('time axis: at least three labels at every width', () => {
  for (const w of [60, 300, 900, 3600, 21600, 86400, 604800]) {
    for (const px of [150, 260, 560, 1300]) {
      const s = timeStep(w, px);
      ok(Math.floor(w / s) >= 3, `window ${w} on ${px} px: step ${s}`);
    }
  }
});
test('natural order and label text', () => {
  eq(['load15', 'load5', 'load1'].sort(natural), ['load1', 'load5', 'load15']);
  eq(['cpu10', 'cpu2', 'cpu1'].sort(natural), ['cpu1', 'cpu2', 'cpu10']);
  eq(quote('a\u202eb\n"'), '"a\\u202eb\\n\\""');
  eq([unitKind('', 'http_status_code'), unitKind('', 'http_up'), unitKind('switches/s'), unitKind('bytes_per_second'), unitKind('count')], ['status', 'up', '/s', 'bytes/s', '']);
});
test('legends: natural order, metric and labels named, newest non-null value', async () => {
  const p = await panelOf(spec('load'), answer(10, [{ name: 'load15', v: 1 }, { name: 'load5', v: 2 }, { name: 'load1', v: 3 }]));
  eq(p.debug().labels, ['load1', 'load5', 'load15']);
  const q = await panelOf(makeSpec({ id: 'test', topic: 'test' }, true), answer(10, [{ name: 'test_value', labels: { job: 'a', b: 'x' }, v: (i) => (i === 4 ? 7 : null) }]));
  eq(q.debug().labels, ['test_value{b="x", job="a"}']);
  ok(q.el.querySelector('.u-legend').textContent.includes('7'), 'legend shows the newest value, not a dash: ' + q.el.querySelector('.u-legend').textContent);
});
test('axes: an order of magnitude apart → separate axes; units never share one', async () => {
  const sys = await panelOf(spec('system'), answer(10, [
    { name: 'system_context_switches_per_second', v: 13000 }, { name: 'system_forks_per_second', v: 224 }, { name: 'system_interrupts_per_second', v: 7000 }]));
  const v = sys.debug().views;
  eq(v.length, 1);
  eq(v[0].labels, ['context_switches', 'interrupts', 'forks']);
  eq(sys.views[0].axes.map((a) => a.map((s) => s.name)), [['system_context_switches_per_second', 'system_interrupts_per_second'], ['system_forks_per_second']]);
  const http = await panelOf(makeSpec({ id: 'http', topic: 'http' }, true), answer(10, [
    { name: 'http_up', labels: { target: 'a' }, v: 1 }, { name: 'http_status_code', labels: { target: 'a' }, v: 200 },
    { name: 'http_duration_seconds', labels: { target: 'a', phase: 'total' }, unit: 'seconds', v: 0.05 }]));
  const scales = http.views.flatMap((w) => w.axes.map((a) => [...new Set(a.map((s) => s.unit))]));
  eq(scales.map((x) => x.length), [1, 1, 1], 'one unit per axis: ' + JSON.stringify(scales));
  eq(scales.flat().sort(), ['seconds', 'status', 'up']);
  const status = http.debug().views.flatMap((w) => w.axes).find((a) => a.ticks.includes('200'));
  ok(status, 'status codes on an axis of plain numbers: ' + JSON.stringify(http.debug().views.map((w) => w.axes.map((a) => a.ticks))));
});
test('memory: stacked up to the total, swap beside it', async () => {
  const G = 2 ** 30;
  const mem = await panelOf(spec('memory'), answer(10, [
    { name: 'memory_used_bytes', v: 3 * G }, { name: 'memory_buffers_bytes', v: 0.5 * G }, { name: 'memory_cached_bytes', v: 8 * G }, { name: 'memory_free_bytes', v: 12 * G },
    { name: 'memory_total_bytes', v: 23.5 * G }, { name: 'memory_swap_used_bytes', v: G }, { name: 'memory_swap_free_bytes', v: 3 * G }, { name: 'memory_swap_total_bytes', v: 4 * G }]));
  const d = mem.debug();
  eq(d.views.length, 2, 'RAM and swap');
  eq(d.views[0].labels, ['used', 'buffers', 'cached', 'free']);
  eq(d.views[0].axes[1].max, 23.5 * G, 'axis ends at the total');
  eq(d.views[1].axes[1].max, 4 * G, 'swap axis ends at its total');
  round(d.views[0].axes[1].ticks, 'memory axis');
  const none = await panelOf(spec('memory'), answer(10, [{ name: 'memory_used_bytes', v: G }, { name: 'memory_total_bytes', v: 2 * G }, { name: 'memory_swap_used_bytes', v: 0 }, { name: 'memory_swap_total_bytes', v: 0 }]));
  eq(none.debug().views.length, 1);
  ok(none.el.textContent.includes('no swap'), 'says so');
});
test('a single point and a sparse series are drawn', async () => {
  const p = await panelOf(makeSpec({ id: 'one', topic: 'one' }, true), answer(300, [{ name: 'one_value', v: (i) => (i === 200 ? 5 : null) }]), { windowSec: 300 });
  const v = p.views[0];
  const px = v.ctx.getImageData(0, 0, v.cv.width, v.cv.height).data;
  let n = 0;
  for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 200) n++;
  ok(n >= 9, 'opaque pixels of the dot: ' + n);
});
test('idle virtual interfaces are hidden, and come back with traffic', async () => {
  const p = await panelOf(spec('network'), answer(10, [
    { name: 'network_receive_bytes_per_second', labels: { device: 'eth0' }, v: 100 }, { name: 'network_receive_bytes_per_second', labels: { device: 'ifb0' }, v: 0 },
    { name: 'network_receive_bytes_per_second', labels: { device: 'veth1' }, v: 5 }]));
  eq(p.debug().labels, ['eth0', 'veth1']);
  eq(p.debug().idle, ['ifb0']);
  p.push({ id: id(51), topic: 'network', ts: (T0 + 10) * 1000, samples: [{ name: 'network_receive_bytes_per_second', labels: { device: 'ifb0' }, value: 9 }] });
  p.render();
  eq(p.debug().labels, ['eth0', 'ifb0', 'veth1']);
});
test('include/exclude are anchored patterns; thresholds mark the panel', async () => {
  const sp = makeSpec({ id: 'x', title: 'Jobs', topic: 'jobs', series: ['jobs_queued'], include: { queue: 'mail|sms' }, exclude: { env: 'te.*' }, unit: 'count' });
  const q = answer(10, [{ name: 'jobs_queued', labels: { queue: 'mail', env: 'prod' }, v: 5 }, { name: 'jobs_queued', labels: { queue: 'mailer', env: 'prod' }, v: 5 },
    { name: 'jobs_queued', labels: { queue: 'sms', env: 'test' }, v: 5 }, { name: 'jobs_queued', labels: { queue: 'sms', env: 'prod' }, v: 50 }, { name: 'jobs_other', labels: { queue: 'mail' }, v: 1 }]);
  const p = await panelOf(sp, q, { thresholds: [{ series: 'jobs_queued', labels: { queue: 'sms' }, warning: 10, critical: 40 }] });
  eq(p.debug().labels, ['jobs_queued{env="prod", queue="mail"}', 'jobs_queued{env="prod", queue="sms"}']);
  eq(p.debug().level, 'critical');
  ok(p.el.classList.contains('lvl-critical') && p.el.querySelector('.alert').textContent.startsWith('critical'), 'marked');
  const w = await panelOf(sp, q, { thresholds: [{ series: 'jobs_queued', warning: 10, critical: 100 }] });
  eq(w.debug().level, 'warning');
  const down = await panelOf(sp, q, { thresholds: [{ series: 'jobs_queued', labels: { queue: 'mail' }, warning: 10, critical: 6 }] });
  eq(down.debug().level, 'critical', 'critical below warning: alerts downwards');
  const cpu = await panelOf(spec('cpu'), answer(10, [{ name: 'cpu_usage_ratio', labels: { cpu: 'total', mode: 'user' }, v: 0.5 }, { name: 'cpu_usage_ratio', labels: { cpu: 'total', mode: 'system' }, v: 0.35 }]),
    { thresholds: [{ series: 'cpu_usage_ratio', labels: { cpu: 'total' }, warning: 0.8, critical: 0.95 }] });
  eq(cpu.debug().level, 'warning', 'a stacked panel compares the top of the stack');
});
test('per-core CPU: busy share per core, in natural order', () => {
  const p = new Panel(spec('cpu'), document.getElementById('panels'), { windowSec: 300 });
  p.perCore = true;
  ok(p.selector().includes('mode="idle"'), p.selector());
  p.load(answer(10, [2, 10, 1].map((c) => ({ name: 'cpu_usage_ratio', labels: { cpu: String(c), mode: 'idle' }, v: 0.75 }))));
  p.render();
  eq(p.debug().labels, ['cpu1', 'cpu2', 'cpu10']);
  eq(p.series[0].last, 0.25);
});

// ---- hub against the Go test server (fake endpoints under /fake/<scenario>) ----
test('hub stream: resume with Last-Event-ID after EOF, no gap or dup', async () => {
  const h = new Hub({ base: '/fake/resume', retryMs: 50, capMs: 100 });
  const s = fakeSub(); h.add(s);
  h.need(s, id(0));
  await until(() => seqsOf(s).length >= 30, 8000, '30 frames');
  h.stop();
  const got = seqsOf(s).slice(0, 30);
  eq(got, Array.from({ length: 30 }, (_, i) => i + 1));
  ok(h.stats.streams >= 3, 'reconnected ' + h.stats.streams);
  eq(h.stats.gaps, 0);
});
test('hub stream: reset event re-bases', async () => {
  const h = new Hub({ base: '/fake/reset', retryMs: 50, capMs: 100 });
  const s = fakeSub(); h.add(s);
  h.need(s, id(5, 'aaaaaaaaaaaaaaaa'));
  await until(() => seqsOf(s).length >= 3, 5000, 'frames after reset');
  h.stop();
  ok(s.msgs.findIndex((m) => m.type === 'reset') < s.msgs.findIndex((m) => m.type === 'frames'), 'reset before frames');
  eq(seqsOf(s).slice(0, 3), [101, 102, 103]);
});
test('hub: buffered stream → polling on the same cursor, then back to the stream', async () => {
  const h = new Hub({ base: '/fake/buffered', retryMs: 50, capMs: 100, helloTimeoutMs: 500, probeMs: 700 });
  const s = fakeSub(); h.add(s);
  h.need(s, id(0));
  await until(() => h.state === 'polling' && seqsOf(s).length >= 5, 5000, 'polling');
  await until(() => h.mode === 'stream' && h.state === 'live', 8000, 'stream again');
  await until(() => seqsOf(s).length >= 25, 8000, '25 frames');
  h.stop();
  const got = seqsOf(s);
  eq(got, Array.from({ length: got.length }, (_, i) => i + 1), 'dense and ordered across the hand-overs');
  ok(h.stats.fallbacks >= 1, 'fell back');
});

test('hub: buffered stream → WebSocket on the same cursor; topics change with subscribe', async () => {
  const h = new Hub({ base: '/fake/ws', retryMs: 50, capMs: 100, helloTimeoutMs: 500, probeMs: 60000 });
  const s = fakeSub(); h.add(s);
  h.need(s, id(0));
  await until(() => h.transport === 'ws' && h.state === 'live' && seqsOf(s).length >= 10, 5000, 'on WebSocket');
  h.setTopics(s, ['cpu']);
  await until(() => h.topics && h.topics.join() === 'cpu', 3000, 'subscription confirmed');
  eq(await (await fetch('/fake/ws/topics')).json(), ['cpu'], 'the server got the subscribe');
  const n = seqsOf(s).length;
  await until(() => seqsOf(s).length >= n + 10, 5000, 'frames after the change');
  h.stop();
  const got = seqsOf(s);
  eq(got, Array.from({ length: got.length }, (_, i) => i + 1), 'dense and ordered across the hand-over and the change');
  eq(h.stats.fallbacks, 1, 'one step down');
  ok(s.msgs.some((m) => m.type === 'status' && m.status.transport === 'ws' && m.status.state === 'live'), 'status says ws');
});

test('hub: the session\'s transport is where it starts; better ones are probed later', async () => {
  const h = new Hub({ base: '/fake/ws', retryMs: 50, capMs: 100, helloTimeoutMs: 300, probeMs: 400 });
  const s = fakeSub(); h.add(s);
  const t0 = Date.now();
  h.need(s, id(0), 'ws');
  await until(() => h.transport === 'ws' && h.state === 'live', 2000, 'on WebSocket at once');
  ok(Date.now() - t0 < 300, 'no SSE attempt first');
  const streams = h.stats.streams;
  await until(() => h.stats.streams >= streams + 2, 3000, 'SSE probed again (and held by the proxy)');
  await until(() => seqsOf(s).length >= 20, 5000, '20 frames');
  h.stop();
  eq(h.transport, 'ws', 'still on WebSocket');
  eq(h.stats.fallbacks, 0);
  const got = seqsOf(s);
  eq(got, Array.from({ length: got.length }, (_, i) => i + 1), 'dense and ordered');
});

test('hub watchdog: a silent stream is dropped after 2x heartbeat; heartbeats keep it alive', async () => {
  const h = new Hub({ base: '/fake/silent', retryMs: 50, capMs: 100, heartbeatMs: 300 });
  const s = fakeSub(); h.add(s);
  h.need(s, id(0));
  await until(() => h.stats.streams >= 2 && seqsOf(s).length >= 6, 6000, 'reconnect after silence');
  const streams = h.stats.streams;
  await sleep(1500); // only heartbeats and sparse frames now: no watchdog reconnect
  h.stop();
  eq(h.stats.streams, streams, 'heartbeats keep the stream');
  const got = seqsOf(s);
  eq(got, Array.from({ length: got.length }, (_, i) => i + 1), 'dense and ordered');
  eq(streams, 2, 'one watchdog reconnect');
});

async function main() {
  const res = { pass: 0, fail: 0, failures: [] };
  for (const t of tests) {
    try { await t.fn(); res.pass++; } catch (e) { res.fail++; res.failures.push(t.name + ': ' + (e && e.stack || e)); }
  }
  window.__results = res;
}
addEventListener('load', main);
