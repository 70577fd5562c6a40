// format.js — values and units as people read them. Units come from the
// series catalog (derived from Prometheus-style name suffixes on the server).

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

function seconds(v) {
  const a = Math.abs(v);
  if (a === 0) return '0 s';
  if (a < 1e-6) return trim(v * 1e9, 1) + ' ns';
  if (a < 1e-3) return trim(v * 1e6, 1) + ' µs';
  if (a < 1) return trim(v * 1e3, 1) + ' ms';
  if (a < 120) return trim(v, 2) + ' s';
  if (a < 7200) return trim(v / 60, 1) + ' min';
  if (a < 172800) return trim(v / 3600, 1) + ' h';
  return trim(v / 86400, 1) + ' d';
}

// unitOf derives the unit from a series name when the catalog has none.
export function unitOf(name) {
  if (/_bytes_per_second$/.test(name)) return 'bytes/s';
  if (/_per_second$/.test(name)) return '/s';
  if (/_bytes$/.test(name)) return 'bytes';
  if (/_seconds$/.test(name)) return 'seconds';
  if (/_ratio$/.test(name)) return 'ratio';
  if (/_celsius$/.test(name)) return 'celsius';
  return '';
}

// unitKind folds the catalog's unit strings ("bytes/s", "packets/s",
// "bytes_per_second", "ratio", …) into the few kinds we format and share a
// y axis by: every rate of things is "/s", whatever the things are.
export function unitKind(unit, name = '') {
  const u = unit || unitOf(name);
  if (u === 'bytes/s' || u === 'bytes_per_second') return 'bytes/s';
  if (u === '/s' || u === 'per_second' || /\/s$/.test(u)) return '/s';
  if (u === 'percent_ratio') return 'ratio';
  if (['bytes', 'ratio', 'seconds', 'celsius'].includes(u)) return u;
  return '';
}

// fmt formats v of a unit kind (see unitKind); null/NaN show as an em dash.
export function fmt(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  switch (unit) {
    case 'bytes': return scaled(v, 1024, binary, 2);
    case 'bytes/s': return scaled(v, 1024, binary, 2) + '/s';
    case '/s': return scaled(v, 1000, si, 2) + '/s';
    case 'ratio': return trim(v * 100, 1) + ' %';
    case 'seconds': return seconds(v);
    case 'celsius': return trim(v, 1) + ' °C';
    default: return scaled(v, 1000, si, 2);
  }
}

// axisFmt is fmt for tick labels: shorter, same units.
export function axisFmt(unit) {
  return (u, ticks) => ticks.map((v) => fmt(v, unit));
}
