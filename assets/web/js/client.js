// client.js — the one connection a browser holds to livedash: a Hub, run in
// a SharedWorker (worker.js) or by the page. assets/PAGE.md, The connection.

// parseId splits "<16 hex>-<decimal seq>" into {epoch, seq}; null if not an ID.
export function parseId(id) {
  if (typeof id !== 'string' || id.length > 64) return null;
  const m = /^([0-9a-f]{16})-(0|[1-9][0-9]{0,19})$/.exec(id);
  if (!m) return null;
  const seq = Number(m[2]);
  if (!Number.isSafeInteger(seq)) return null;
  return { epoch: m[1], seq };
}

// SSEParser: the WHATWG event-stream grammar over chunks split anywhere.
export class SSEParser {
  constructor({ onEvent = () => {}, onComment = () => {}, onRetry = () => {} } = {}) {
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.onRetry = onRetry;
    this.buf = '';
    this.skipLF = false; // the previous chunk ended in CR: a leading LF belongs to it
    this.type = '';
    this.data = [];
    this.hasData = false;
    this.lastId = '';
  }

  push(chunk) {
    let s = chunk;
    if (this.skipLF) {
      this.skipLF = false;
      if (s.startsWith('\n')) s = s.slice(1);
    }
    s = this.buf + s;
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(s.slice(start, i));
      if (c === 13) {
        if (i + 1 < s.length) {
          if (s.charCodeAt(i + 1) === 10) i++;
        } else {
          this.skipLF = true;
        }
      }
      start = i + 1;
    }
    this.buf = s.slice(start);
  }

  line(l) {
    if (l === '') return this.dispatch();
    if (l.charCodeAt(0) === 58) { // ':'
      this.onComment(l.slice(1).replace(/^ /, ''));
      return;
    }
    const colon = l.indexOf(':');
    let field = l, value = '';
    if (colon >= 0) {
      field = l.slice(0, colon);
      value = l.slice(colon + 1);
      if (value.charCodeAt(0) === 32) value = value.slice(1);
    }
    switch (field) {
      case 'event': this.type = value; break;
      case 'data': this.data.push(value); this.hasData = true; break;
      case 'id': if (!value.includes('\0')) this.lastId = value; break;
      case 'retry': if (/^[0-9]+$/.test(value)) this.onRetry(Number(value)); break;
      default: break; // unknown fields are ignored, as the spec says
    }
  }

  dispatch() {
    const type = this.type || 'message';
    this.type = '';
    if (!this.hasData) return;
    const data = this.data.join('\n');
    this.data = [];
    this.hasData = false;
    this.onEvent({ type, data, id: this.lastId });
  }
}

// backoffDelay: full jitter under a ceiling doubling per attempt from retry: to cap.
export function backoffDelay(attempt, retryMs, capMs, rnd = Math.random) {
  const base = Math.max(100, retryMs || 0);
  const ceiling = Math.min(Math.max(capMs, base), base * 2 ** Math.min(attempt, 20));
  return Math.round(rnd() * ceiling);
}

export const defaults = {
  retryMs: 2000,
  capMs: 30000,
  heartbeatMs: 15000, // the watchdog is 2x
  helloTimeoutMs: 5000,
  failuresToPoll: 3,
  probeMs: 30000,
  pollWait: '25s',
  pollLimit: 500,
  bufferFrames: 2000, // recent frames, for tabs that join
};

// transports, best first; Hub.transport is one of them.
export const transports = ['sse', 'ws', 'poll'];

// sameTopics compares two topic lists (sorted arrays, or null for all).
function sameTopics(a, b) {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

// Hub owns the connection and posts status, frames, reset and gap to its subscribers.
export class Hub {
  constructor(opts = {}) {
    this.o = { ...defaults, ...opts };
    this.base = opts.base || '';
    this.fetch = opts.fetch || ((...a) => fetch(...a));
    this.subs = new Set();
    this.state = 'idle'; // idle | connecting | live | reconnecting | polling
    this.mode = 'stream'; // stream | poll
    this.transport = 'sse'; // sse | ws | poll (see transports)
    this.level = 0; // transports.indexOf(this.transport)
    this.want = null; // the topics the subscribers need (sorted), null: all
    this.topics = null; // the topics the connection serves now
    this.probeIn = this.o.probeMs;
    this.probeAt = 0;
    this.cursor = null; // last ID delivered (or the position to resume from)
    this.epoch = null;
    this.lastSeq = -1;
    this.floor = null; // frames after floor were delivered
    this.buffer = [];
    this.retryMs = this.o.retryMs;
    this.attempt = 0;
    this.failures = 0;
    this.nextTryAt = 0;
    this.offset = 0; // server clock - local clock, ms
    this.lag = null;
    this.started = false;
    this.stats = { streams: 0, polls: 0, frames: 0, dups: 0, gaps: 0, resets: 0, fallbacks: 0, lastError: '' };
    this.stopped = false;
    this.ctl = null;
  }

  status() {
    return {
      state: this.state, mode: this.mode, transport: this.transport, topics: this.topics,
      lastId: this.cursor, epoch: this.epoch,
      nextTryAt: this.nextTryAt, lag: this.lag, offset: this.offset, subscribers: this.subs.size,
      stats: { ...this.stats },
    };
  }

  add(sub) {
    this.subs.add(sub);
    sub.post({ type: 'status', status: this.status() });
  }

  remove(sub) { this.subs.delete(sub); this.updateTopics(); }

  setTransport(t) {
    this.level = Math.max(0, transports.indexOf(t));
    this.transport = transports[this.level];
    this.mode = this.transport === 'poll' ? 'poll' : 'stream';
  }

  // announce tells every subscriber the current status.
  announce() { this.broadcast({ type: 'status', status: this.status() }); }

  // setTopics: sub needs these topics (an array), or every topic (null).
  setTopics(sub, topics) {
    sub.topics = Array.isArray(topics) ? [...new Set(topics.filter((t) => typeof t === 'string' && t))].sort() : null;
    this.updateTopics();
  }

  union() {
    if (!this.subs.size) return this.want;
    const set = new Set();
    for (const s of this.subs) {
      if (!s.topics) return null;
      for (const t of s.topics) set.add(t);
    }
    return [...set].sort();
  }

  // updateTopics moves the connection to the union of the subscribers' topics.
  updateTopics() {
    const want = this.union();
    if (sameTopics(want, this.want)) return;
    this.want = want;
    if (!this.started) { this.topics = want; return; }
    if (this.transport === 'ws') {
      if (this.wsSync) this.wsSync();
    } else if (this.transport === 'sse') {
      if (this.ctl) { this.switching = true; this.ctl.abort(); }
    } else if (this.pollCtl) {
      this.pollCtl.abort(); // the next poll asks for the new topics
    }
  }

  confirm(topics) {
    if (sameTopics(topics, this.topics)) return;
    this.topics = topics;
    this.announce();
  }

  // need: sub has everything up to afterId; the first need starts the connection there.
  need(sub, afterId, transport) {
    const id = parseId(afterId);
    if (!this.started) {
      this.started = true;
      if (transports.includes(transport)) this.setTransport(transport);
      this.topics = this.want;
      if (id) {
        this.cursor = afterId;
        this.epoch = id.epoch;
        this.lastSeq = id.seq;
        this.floor = id.seq;
      } else {
        this.floor = -1; // no cursor: from the head
      }
      this.run();
      return;
    }
    if (!id) {
      if (this.floor === -1) sub.post({ type: 'frames', frames: this.buffer.slice(), lastId: this.cursor, lag: this.lag });
      else sub.post({ type: 'gap' });
      return;
    }
    if (id.epoch !== this.epoch || this.floor === null || id.seq < this.floor) {
      sub.post({ type: 'gap' });
      return;
    }
    const frames = this.buffer.filter((f) => f._seq > id.seq);
    if (frames.length) sub.post({ type: 'frames', frames, lastId: this.cursor, lag: this.lag });
  }

  broadcast(msg) { for (const s of this.subs) s.post(msg); }

  setState(state, extra = {}) {
    const changed = state !== this.state || extra.nextTryAt !== undefined;
    this.state = state;
    if (extra.nextTryAt !== undefined) this.nextTryAt = extra.nextTryAt;
    if (changed) this.broadcast({ type: 'status', status: this.status() });
  }

  // deliver drops frames already delivered and fans the rest out as one message.
  deliver(frames) {
    const out = [];
    const now = Date.now();
    for (const f of frames) {
      const id = parseId(f.id);
      if (!id) continue;
      if (this.epoch !== null && id.epoch !== this.epoch) continue; // a reset comes first; never mix epochs
      if (id.seq <= this.lastSeq) { this.stats.dups++; continue; }
      // With every topic streamed, seqs are dense.
      if (this.topics === null && this.lastSeq >= 0 && id.seq !== this.lastSeq + 1) this.stats.gaps++;
      this.epoch = id.epoch;
      this.lastSeq = id.seq;
      this.cursor = f.id;
      f._seq = id.seq;
      if (typeof f.ts === 'number') this.lag = Math.max(0, now + this.offset - f.ts);
      out.push(f);
    }
    if (!out.length) return;
    this.stats.frames += out.length;
    for (const f of out) this.buffer.push(f);
    const over = this.buffer.length - this.o.bufferFrames;
    if (over > 0) {
      this.floor = Math.max(this.floor ?? -1, this.buffer[over - 1]._seq);
      this.buffer.splice(0, over);
    }
    this.broadcast({ type: 'frames', frames: out, lastId: this.cursor, lag: this.lag });
  }

  // onReset: tabs re-load their windows; the hub resumes from reset.head.
  onReset(reset) {
    this.stats.resets++;
    const head = parseId(reset.head);
    this.buffer = [];
    if (head) {
      this.epoch = head.epoch;
      this.lastSeq = head.seq;
      this.floor = head.seq;
      this.cursor = reset.head;
    } else {
      this.lastSeq = -1;
      this.floor = -1;
      this.cursor = null;
    }
    this.broadcast({ type: 'reset', reset });
  }

  clock(serverMs) {
    if (Number.isFinite(serverMs)) this.offset = serverMs - Date.now();
  }

  stop() {
    this.stopped = true;
    for (const c of [this.ctl, this.probeCtl, this.pollCtl, this.wsCtl, this.probeWsCtl]) if (c) c.abort();
    clearTimeout(this.probeTimer);
  }

  async run() {
    if (this.transport === 'poll') this.probeAt = Date.now() + this.probeIn;
    while (!this.stopped) {
      let r;
      if (this.transport === 'poll') {
        await this.pollLoop();
        if (this.stopped || this.transport === 'poll' || !this.probePromise) continue;
        r = await this.probePromise; // the probe took over: it is the connection now
      } else {
        r = await this.connectOnce(this.transport, false);
        while (this.tookOver && !this.stopped) { this.tookOver = false; r = await this.probePromise; }
      }
      if (this.stopped) return;
      if (r.switch) continue; // new topics on SSE: reconnect at once, same cursor
      if (r.healthy) { this.attempt = 0; this.failures = 0; } else { this.attempt++; }
      // A WebSocket that does not open counts as a failure.
      if (!r.healthy && (r.reachable || this.transport === 'ws')) this.failures++;
      if (r.blocked || this.failures >= this.o.failuresToPoll) {
        this.stepDown();
        continue;
      }
      await this.wait(backoffDelay(this.attempt, this.retryMs, this.o.capMs));
    }
  }

  // stepDown moves to the next transport (SSE → WebSocket → polling).
  stepDown() {
    if (this.level >= transports.length - 1) return;
    this.setTransport(transports[this.level + 1]);
    this.stats.fallbacks++;
    this.failures = 0;
    this.attempt = 0;
    this.probeIn = this.o.probeMs;
    this.probeAt = Date.now() + this.probeIn;
    this.announce();
  }

  connectOnce(t, probe) { return t === 'ws' ? this.wsOnce(probe) : this.streamOnce(probe); }

  // scheduleProbe tries the transports above the current one later.
  scheduleProbe() {
    clearTimeout(this.probeTimer);
    if (this.level === 0 || this.stopped) return;
    this.probeAt = Date.now() + this.probeIn;
    if (this.transport !== 'poll') this.probeTimer = setTimeout(() => this.probeUp(), this.probeIn);
  }

  // probeUp tries each better transport beside the current one; hello takes over.
  async probeUp() {
    if (this.probing || this.stopped || this.level === 0) return;
    this.probing = true;
    const top = this.level;
    for (let l = 0; l < top && !this.stopped; l++) {
      this.probePromise = this.connectOnce(transports[l], true);
      const r = await this.probePromise;
      if (r.hello) { this.probing = false; return; }
    }
    this.probing = false;
    this.probeIn = Math.min(this.probeIn * 2, 600000);
    this.scheduleProbe();
  }

  // takeOver: the probe becomes the connection (deliver drops repeats).
  takeOver(t) {
    const from = this.transport;
    this.setTransport(t);
    this.probeIn = this.o.probeMs;
    clearTimeout(this.probeTimer);
    if (from === 'poll') {
      if (this.pollCtl) this.pollCtl.abort();
    } else {
      this.tookOver = true;
      for (const c of [this.ctl, this.wsCtl]) if (c) c.abort();
    }
    this.announce();
  }

  wait(ms) {
    this.setState(this.mode === 'poll' ? 'polling' : 'reconnecting', { nextTryAt: Date.now() + ms });
    return new Promise((resolve) => { this.wake = resolve; setTimeout(resolve, ms); });
  }

  // streamOnce holds one stream until it ends: {reachable, healthy, blocked, hello, switch}.
  async streamOnce(probe) {
    const ctl = new AbortController();
    if (!probe) { this.ctl = ctl; this.switching = false; } else this.probeCtl = ctl;
    const r = { reachable: false, healthy: false, blocked: false, hello: false };
    let timer = null;
    let why = '';
    const pending = []; // frames parsed from one chunk, delivered as one message
    const arm = (ms, reason) => {
      clearTimeout(timer);
      timer = setTimeout(() => { why = reason; ctl.abort(); }, ms);
    };
    if (!probe) this.setState('connecting', { nextTryAt: 0 });
    this.stats.streams++;
    arm(this.o.helloTimeoutMs, 'no-hello');
    try {
      const headers = {};
      if (this.cursor) headers['Last-Event-ID'] = this.cursor;
      const topics = this.want;
      const q = topics ? '?topics=' + encodeURIComponent(topics.join(',')) : '';
      const res = await this.fetch(this.base + '/api/v1/stream' + q, {
        headers, cache: 'no-store', credentials: 'same-origin', signal: ctl.signal,
      });
      r.reachable = true;
      const ctype = res.headers.get('content-type') || '';
      if (res.status !== 200 || !ctype.startsWith('text/event-stream')) {
        why = 'status ' + res.status;
        try { await res.body?.cancel(); } catch { /* ignore */ }
        return r;
      }
      const parser = new SSEParser({
        onRetry: (ms) => { this.retryMs = ms; },
        onComment: (text) => {
          // ": hb <head-id> <unix_ms>"
          const p = text.split(' ');
          if (p[0] !== 'hb') return;
          this.clock(Number(p[2]));
          if (r.hello) { r.healthy = true; arm(2 * this.o.heartbeatMs, 'watchdog'); }
        },
        onEvent: (ev) => {
          if (ev.type === 'hello') {
            let h = {};
            try { h = JSON.parse(ev.data); } catch { /* keep {} */ }
            r.hello = true;
            this.clock(h.server_time);
            if (h.retry_ms > 0) this.retryMs = h.retry_ms;
            if (this.epoch === null && typeof h.epoch === 'string') this.epoch = h.epoch;
            // no cursor: resume from the head hello names
            const at = parseId(ev.id);
            if (!this.cursor && at && (this.epoch === null || at.epoch === this.epoch)) {
              this.cursor = ev.id;
              this.epoch = at.epoch;
              this.lastSeq = Math.max(this.lastSeq, at.seq);
              this.floor = Math.max(this.floor ?? -1, at.seq);
            }
            if (probe) { this.takeOver('sse'); this.ctl = ctl; }
            this.confirm(topics);
            this.setState('live', { nextTryAt: 0 });
            arm(2 * this.o.heartbeatMs, 'watchdog');
          } else if (ev.type === 'reset') {
            let rs = {};
            try { rs = JSON.parse(ev.data); } catch { /* keep {} */ }
            if (rs.head === undefined) return;
            this.epoch = parseId(rs.head)?.epoch ?? this.epoch;
            this.onReset(rs);
          } else if (ev.type === 'frame') {
            let f;
            try { f = JSON.parse(ev.data); } catch { return; }
            if (!f.id) f.id = ev.id;
            pending.push(f);
            r.healthy = true;
            arm(2 * this.o.heartbeatMs, 'watchdog');
          }
        },
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
        if (pending.length) this.deliver(pending.splice(0));
      }
      why = why || 'eof';
    } catch (e) {
      if (!why) why = (e && e.name) || 'error';
    } finally {
      clearTimeout(timer);
      if (!probe && this.switching && this.ctl === ctl) { this.switching = false; why = 'topics'; r.switch = true; }
      if (pending.length) this.deliver(pending.splice(0));
      // no hello in time: something holds the bytes
      if (why === 'no-hello') { r.blocked = true; r.reachable = true; }
      this.stats.lastError = why;
    }
    return r;
  }

  // pollLoop long-polls /api/v1/frames until a probe takes over.
  async pollLoop() {
    this.setState('polling', { nextTryAt: 0 });
    let attempt = 0;
    while (!this.stopped && this.transport === 'poll') {
      if (!this.probing && Date.now() >= this.probeAt) this.probeUp();
      const ctl = new AbortController();
      this.pollCtl = ctl;
      const timer = setTimeout(() => ctl.abort(), 60000);
      try {
        const q = new URLSearchParams({ limit: String(this.o.pollLimit), wait: this.o.pollWait });
        if (this.cursor) q.set('after', this.cursor);
        const topics = this.want;
        if (topics) q.set('topics', topics.join(','));
        this.confirm(topics);
        this.stats.polls++;
        const res = await this.fetch(this.base + '/api/v1/frames?' + q, { cache: 'no-store', credentials: 'same-origin', signal: ctl.signal });
        if (res.status !== 200) throw new Error('status ' + res.status);
        const body = await res.json();
        if (this.transport !== 'poll') break; // a probe took over
        if (body.reset) this.onReset(body.reset);
        this.deliver(body.frames || []);
        if (!(body.frames || []).length && parseId(body.next)) {
          // move the cursor only: dedupe stays exact
          this.cursor = body.next;
        }
        attempt = 0;
        this.setState('polling', { nextTryAt: 0 });
      } catch (e) {
        if (this.transport !== 'poll' || this.stopped) break;
        if (!sameTopics(this.want, this.topics)) continue; // aborted for new topics
        this.stats.lastError = 'poll: ' + ((e && e.message) || e);
        await this.wait(backoffDelay(attempt++, this.retryMs, this.o.capMs));
      } finally {
        clearTimeout(timer);
      }
    }
  }

  // wsOnce holds one WebSocket until it closes; the result is streamOnce's.
  wsOnce(probe) {
    return new Promise((resolve) => {
      const r = { reachable: false, healthy: false, blocked: false, hello: false };
      let why = '';
      let timer = null;
      let ws;
      const ctl = { abort: () => { if (!why) why = 'aborted'; try { ws.close(1000); } catch { /* not open */ } } };
      if (!probe) { this.wsCtl = ctl; this.setState('connecting', { nextTryAt: 0 }); } else this.probeWsCtl = ctl;
      const arm = (ms, reason) => {
        clearTimeout(timer);
        timer = setTimeout(() => { why = reason; try { ws.close(4000); } catch { /* closed */ } }, ms);
      };
      this.stats.streams++;
      const u = new URL(this.base + '/api/v1/ws', location.href);
      u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
      let asked = this.want; // the topics of the subscription the next hello answers
      const queue = []; // subscriptions sent, not yet confirmed
      if (asked) u.searchParams.set('topics', asked.join(','));
      if (this.cursor) u.searchParams.set('lastEventId', this.cursor);
      const sync = () => {
        // One change in flight at a time; the newest wish wins.
        if (!r.hello || queue.length || ws.readyState !== 1 || sameTopics(this.want, asked)) return;
        const want = this.want;
        const msg = { op: 'subscribe' };
        if (want) msg.topics = want;
        queue.push(want);
        ws.send(JSON.stringify(msg));
      };
      arm(this.o.helloTimeoutMs, 'no-hello');
      try {
        ws = new WebSocket(u);
      } catch (e) {
        this.stats.lastError = 'ws: ' + ((e && e.message) || e);
        resolve(r);
        return;
      }
      ws.onopen = () => { r.reachable = true; };
      ws.onmessage = (e) => {
        if (typeof e.data !== 'string') return;
        const frames = [];
        for (const line of e.data.split('\n')) {
          let ev;
          try { ev = JSON.parse(line); } catch { continue; }
          const d = ev && ev.data;
          if (!d || typeof d !== 'object') continue;
          if (ev.event === 'frame') {
            frames.push(d);
            r.healthy = true;
            arm(2 * this.o.heartbeatMs, 'watchdog');
          } else if (ev.event === 'hb') {
            this.clock(d.server_time);
            if (r.hello) { r.healthy = true; arm(2 * this.o.heartbeatMs, 'watchdog'); }
          } else if (ev.event === 'hello') {
            if (frames.length) this.deliver(frames.splice(0));
            const first = !r.hello;
            r.hello = true;
            this.clock(d.server_time);
            if (d.retry_ms > 0) this.retryMs = d.retry_ms;
            if (this.epoch === null && typeof d.epoch === 'string') this.epoch = d.epoch;
            // no cursor: resume from the head hello names
            const at = parseId(d.head);
            if (!this.cursor && at && (this.epoch === null || at.epoch === this.epoch)) {
              this.cursor = d.head;
              this.epoch = at.epoch;
              this.lastSeq = Math.max(this.lastSeq, at.seq);
              this.floor = Math.max(this.floor ?? -1, at.seq);
            }
            if (!first && queue.length) asked = queue.shift();
            if (probe && first) { this.takeOver('ws'); this.wsCtl = ctl; probe = false; }
            if (!probe) {
              this.wsSync = sync;
              this.confirm(asked);
              this.setState('live', { nextTryAt: 0 });
              if (first) this.scheduleProbe();
            }
            arm(2 * this.o.heartbeatMs, 'watchdog');
            sync();
          } else if (ev.event === 'reset') {
            if (frames.length) this.deliver(frames.splice(0));
            if (d.head === undefined) continue;
            this.epoch = parseId(d.head)?.epoch ?? this.epoch;
            this.onReset(d);
          }
        }
        if (frames.length) this.deliver(frames);
      };
      ws.onclose = (e) => {
        clearTimeout(timer);
        if (this.wsSync === sync) this.wsSync = null;
        // 1013 (over capacity, shutting down) says when to come back.
        const m = /retry_ms=([0-9]+)/.exec(e.reason || '');
        if (e.code === 1013 && m) this.retryMs = Number(m[1]);
        if (why === 'no-hello' && r.reachable) r.blocked = true;
        this.stats.lastError = 'ws: ' + (why || 'close ' + e.code + (e.reason ? ' ' + e.reason : ''));
        resolve(r);
      };
    });
  }
}
