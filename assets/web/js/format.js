// format.js — values, units, round ticks, time labels (assets/PAGE.md).
const binary = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
const si = ['', 'k', 'M', 'G', 'T', 'P'];

function scaled(v, step, names, digits) {
  let i = 0;
  let x = Math.abs(v);
  while (x >= step && i < names.length - 1) { x /= step; i++; }
  return (v < 0 ? '-' : '') + trim(x, digits) + (names[i] ? ' ' + names[i] : '');
}

function trim(x, digits) {
  if (x === 0) return '0';
  const d = x >= 100 ? 0 : x >= 10 ? Math.min(1, digits) : digits;
  return x.toFixed(d).replace(/\.0+$/, '').replace(/(\.\d*?)0+$/, '$1');
}

const secUnits = [[1e-9, 'ns'], [1e-6, 'µs'], [1e-3, 'ms'], [1, 's'], [60, 'min'], [3600, 'h'], [86400, 'd']];
function secUnit(a, lim) {
  let u = secUnits[0];
  for (const x of secUnits) if (a >= x[0] * lim[x[1]]) u = x;
  return u;
}
function seconds(v) {
  const a = Math.abs(v);
  if (a === 0) return '0 s';
  const [k, n] = secUnit(a, { ns: 0, µs: 1, ms: 1, s: 1, min: 2, h: 2, d: 2 });
  return trim(v / k, 2) + ' ' + n;
}

export function unitOf(name) {
  if (/_bytes_per_second$/.test(name)) return 'bytes/s';
  if (/_per_second$/.test(name)) return '/s';
  if (/_bytes$/.test(name)) return 'bytes';
  if (/_seconds$/.test(name)) return 'seconds';
  if (/_ratio$/.test(name)) return 'ratio';
  if (/_celsius$/.test(name)) return 'celsius';
  if (/(^|_)status(_code)?$/.test(name)) return 'status';
  if (/(^|_)up$/.test(name)) return 'up';
  return '';
}

// unitKind: the unit kinds we format and share axes by; every rate is "/s".
export function unitKind(unit, name = '') {
  const u = unit || unitOf(name);
  if (u === 'bytes/s' || u === 'bytes_per_second') return 'bytes/s';
  if (u === '/s' || u === 'per_second' || /\/s$/.test(u)) return '/s';
  if (u === 'percent_ratio') return 'ratio';
  if (u === 'count') return '';
  return ['bytes', 'ratio', 'seconds', 'celsius', 'status', 'up'].includes(u) ? u : '';
}

export function fmt(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  switch (unit) {
    case 'bytes': return scaled(v, 1024, binary, 2);
    case 'bytes/s': return scaled(v, 1024, binary, 2) + '/s';
    case '/s': return scaled(v, 1000, si, 2) + '/s';
    case 'ratio': return trim(v * 100, 1) + ' %';
    case 'seconds': return seconds(v);
    case 'celsius': return trim(v, 1) + ' °C';
    case 'status': return String(Math.round(v));
    case 'up': return v >= 0.5 ? 'up' : 'down';
    default: return scaled(v, 1000, si, 2);
  }
}

// Tick steps: 1, 2, 5 × 10^k of the unit shown; labels in their step's prefix.
const dec = (lo, hi, ms = [1, 2, 5]) => {
  const r = [];
  for (let e = lo; e <= hi; e++) for (const m of ms) r.push(+`${m}e${e}`);
  return r;
};
const mult = (base, n) => {
  const r = [];
  for (let p = 0; p <= n; p++) for (const m of [1, 2, 5, 10, 20, 50, 100, 200, 500]) r.push(m * base ** p);
  return r;
};
const clock = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 432000, 864000];
const incrs = {
  bytes: mult(1024, 5),
  ratio: dec(-6, 1),
  seconds: [...dec(-9, -1), ...clock],
  status: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
  up: [1],
  '': dec(-6, 15),
};
export function incrsOf(unit) {
  return incrs[unit === 'bytes/s' ? 'bytes' : unit] || incrs[''];
}

// niceTop: a whole number of the step that splits v into about five.
export function niceTop(v, unit) {
  if (!(v > 0)) return 1;
  const l = incrsOf(unit);
  const step = l.find((x) => x >= v / 5) || l[l.length - 1];
  return Math.ceil(v / step - 1e-9) * step;
}

const digits = (x) => Math.max(0, -Math.floor(Math.log10(x) + 1e-9));
export function tickFmt(unit, step) {
  const num = (div, suffix) => {
    const d = digits(step / div);
    return (v) => {
      const t = (v / div).toFixed(d);
      return (t.includes('.') ? t.replace(/\.?0+$/, '') : t).replace(/^-0$/, '0') + suffix;
    };
  };
  switch (unit) {
    case 'bytes': case 'bytes/s': {
      let p = 0;
      while (p < 5 && step >= 1024 ** (p + 1)) p++;
      return num(1024 ** p, ' ' + binary[p] + (unit === 'bytes/s' ? '/s' : ''));
    }
    case 'ratio': return num(0.01, ' %');
    case 'seconds': {
      const [k, n] = secUnit(step, { ns: 0, µs: 1, ms: 1, s: 1, min: 1, h: 1, d: 1 });
      return num(k, ' ' + n);
    }
    case 'celsius': return num(1, ' °C');
    case 'status': return num(1, '');
    case 'up': return (v) => (v === 1 ? 'up' : v === 0 ? 'down' : '');
    default: {
      let p = 0;
      while (p < 5 && step >= 1000 ** (p + 1)) p++;
      return num(1000 ** p, (p ? ' ' + si[p] : '') + (unit === '/s' ? '/s' : ''));
    }
  }
}

// timeStep: labels ≥ 48 px apart (70 with seconds), never fewer than three.
export function timeStep(range, px) {
  let i = clock.findIndex((s) => (px * s) / range >= (s < 60 ? 70 : 48));
  if (i < 0) i = clock.length - 1;
  while (i > 0 && range / clock[i] < 3) i--;
  return clock[i];
}
export function timeSplits(min, max, step) {
  const off = -new Date(min * 1000).getTimezoneOffset() * 60;
  const out = [];
  for (let t = Math.ceil((min + off) / step) * step - off; t <= max; t += step) out.push(t);
  return out;
}
const hm = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
const hms = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
export const clockFmt = hms;
export const dateFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
const md = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const cache = new Map();
export function timeLabel(t, step) {
  const k = (step < 60 ? 's' : step < 86400 ? 'm' : 'd') + t;
  let v = cache.get(k);
  if (v === undefined) {
    if (cache.size > 500) cache.clear();
    const d = new Date(t * 1000);
    v = step < 60 ? hms.format(d) : step >= 86400 || (step >= 3600 && !d.getHours() && !d.getMinutes()) ? md.format(d) : hm.format(d);
    cache.set(k, v);
  }
  return v;
}

const collator = new Intl.Collator(undefined, { numeric: true });
// natural: cpu2 < cpu10.
export const natural = (a, b) => collator.compare(a, b);

// clean escapes control and bidi characters; quote: a JSON string, cleaned.
const esc = (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');
export const clean = (v) => String(v).replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, esc);
export const quote = (v) => clean(JSON.stringify(String(v)));
