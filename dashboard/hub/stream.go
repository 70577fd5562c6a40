package hub

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"livedash/dashboard/ring"
)

// Replay reads the ring in chunks of this size, writing each chunk before
// reading the next: memory per replaying stream stays bounded whatever the
// cap, and no read transaction is open while a socket write blocks.
const (
	replayChunkFrames = 512
	replayChunkBytes  = 512 << 10
)

// Topic filters: at most maxTopics items per request, each at most
// maxTopicLen bytes (the ring's own topic limit); extra items are ignored and
// longer ones can match nothing.
const (
	maxTopics   = 256
	maxTopicLen = 255
)

// bufPool holds write buffers for coalesced live writes and replay chunks, so
// an idle stream holds no buffer at all (memory per idle stream matters at
// 10k streams). Very large buffers are dropped rather than pooled.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 1<<20 {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// ServeStream is the handler of GET /api/v1/stream (DESIGN §4). It always
// answers 200 with an event stream — a client mistake (bad Last-Event-ID,
// unknown topics) gets a reset event or simply no frames, and "come back
// later" (over a limit, shutting down) gets a retry: hint and a clean end —
// because a browser's EventSource gives up for good on any other status.
//
// The route must not be wrapped by gzip, body-dump or timeout middleware
// (they buffer, or cannot flush, or end the stream), and the server must have
// no WriteTimeout: every write here sets its own deadline.
//
// Query: topics=a,b (comma-separated, repeated parameters are merged, empty
// items ignored, no items = all topics; topics that do not exist simply
// match nothing), lastEventId=<id> (used when there is no Last-Event-ID
// header; the header wins).
func (h *Hub) ServeStream(c echo.Context) error {
	h.serve(c.Response(), c.Request())
	return nil
}

// ServeHTTP is ServeStream for a plain net/http mux.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.serve(w, r) }

// stream is one open SSE response. Only its handler goroutine touches it,
// except kick (any goroutine) and the fields the hub reads under its lock.
type stream struct {
	h     *Hub
	w     http.ResponseWriter
	rc    *http.ResponseController
	flush func() error
	ip    netip.Addr

	// conn is the hijacked connection of an HTTP/1.1 stream (nil: the
	// stream writes through w). gone is closed when the client goes away:
	// the request context's Done, or for a hijacked stream the end of its
	// reader goroutine.
	conn net.Conn
	gone <-chan struct{}

	topics map[string]struct{} // nil: every topic

	kickOnce   sync.Once
	done       chan struct{} // closed by kick
	kickReason string        // set before done is closed

	lastWrite time.Time // monotonic; for the idle heartbeat
	deadline  time.Time // the write deadline write last set (see write)
	retry     time.Duration
	parts     [][]byte // scratch for coalescing, cleared after every write
}

// kick asks the stream to send a final retry: hint and end. Safe from any
// goroutine; only the first reason counts.
func (s *stream) kick(reason string) {
	s.kickOnce.Do(func() {
		s.kickReason = reason
		close(s.done)
		// A writer blocked on a client that stopped reading would notice done
		// only at its write deadline (stream.write_timeout, 10 s by default),
		// past the drain window: shorten it. Setting a connection deadline is
		// safe from any goroutine; a writer that is not stuck sets its own
		// deadline again before its final retry: hint.
		_ = s.setWriteDeadline(time.Now().Add(min(s.h.cfg.WriteTimeout.D(), time.Second)))
	})
}

// setWriteDeadline sets the write deadline on the hijacked connection, or
// through the ResponseController. Safe from any goroutine.
func (s *stream) setWriteDeadline(t time.Time) error {
	if s.conn != nil {
		return s.conn.SetWriteDeadline(t)
	}
	return s.rc.SetWriteDeadline(t)
}

func (h *Hub) serve(w http.ResponseWriter, r *http.Request) {
	h.enter()
	detached := false
	defer func() {
		if !detached {
			h.leave()
		}
	}()

	// Headers are written here, not by go-sse's Upgrade, so that Echo's
	// Response sees WriteHeader (else it logs "superfluous WriteHeader") and
	// so that the proxy-related headers are always there.
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	hdr.Del("Content-Length")
	hdr.Del("Content-Encoding")
	if r.ProtoMajor == 1 {
		// HTTP/1.1: no chunked encoding; the body ends when the connection
		// closes (the setup the SSE spec recommends; net/http, or the
		// stream itself once hijacked, closes it at the end). Chunking puts a chunk
		// header into net/http's 4 KiB connection buffer before every write,
		// so a tick larger than that cost two write(2)s (and a third for the
		// flush of the rest); unchunked, a coalesced write of any size is
		// one write(2) straight from our buffer. The write syscall is the
		// cost that matters at 10k streams. HTTP/2 never sees this header.
		hdr.Set("Transfer-Encoding", "identity")
	}
	w.WriteHeader(http.StatusOK)

	s := &stream{
		h:     h,
		w:     w,
		rc:    http.NewResponseController(w),
		ip:    clientIP(r.RemoteAddr),
		done:  make(chan struct{}),
		retry: jitter(h.cfg.Retry.D(), 1, 1.5),
	}
	q := r.URL.Query()
	s.topics = parseTopics(q["topics"])
	lastID := r.Header.Get("Last-Event-ID")
	if lastID == "" {
		lastID = q.Get("lastEventId")
	}

	if r.ProtoMajor == 1 && s.hijack() {
		// The connection is ours: the handler returns, and with it
		// net/http's per-connection state (buffers, request, its
		// background reader); the stream lives on in a fresh goroutine,
		// counted in h.active until it ends (Shutdown waits for that).
		detached = true
		go func() {
			defer h.leave()
			defer s.conn.Close()
			s.serve(lastID)
		}()
		return
	}
	s.flush = flusherOf(w)
	s.gone = r.Context().Done()
	defer s.finish()
	s.serve(lastID)
}

// hijack takes over the connection of an HTTP/1.1 stream after its response
// head (memory per idle stream: net/http keeps ~10 KiB of buffers, the
// request and a background reader goroutine per connection while the
// handler runs). The response head is flushed by Hijack itself; the body is
// unframed (Transfer-Encoding: identity), so the raw SSE bytes follow it on
// the connection, which ends the body by closing. A goroutine blocked in
// Read notices the client going away at once, as net/http's did. It reports
// false when the writer cannot be hijacked (HTTP/2, test recorders).
func (s *stream) hijack() bool {
	conn, brw, err := s.rc.Hijack()
	if err != nil {
		return false
	}
	// Nothing is buffered (Hijack flushed the head); were anything left,
	// it must go out before the events. A failed flush means the client is
	// gone: the first write fails, as would the reader.
	_ = brw.Writer.Flush()
	s.conn = conn
	gone := make(chan struct{})
	s.gone = gone
	go readUntilGone(conn, gone)
	return true
}

// readUntilGone reads and discards whatever the client sends until the
// connection fails or closes, then closes gone.
func readUntilGone(conn net.Conn, gone chan<- struct{}) {
	defer close(gone)
	var b [64]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			return
		}
	}
}

// serve registers the stream and runs it, or sends a retry: hint when it is
// turned away.
func (s *stream) serve(lastID string) {
	h := s.h
	if reason := h.register(s); reason != "" {
		h.m.rejected.WithLabelValues(reason).Inc()
		// Over a limit: come back much later, spread out. Shutting down:
		// come back at the normal pace; a restarted server will be there.
		d := jitter(h.cfg.Retry.D(), 10, 20)
		msg := "over capacity"
		if reason == rejectShutdown {
			d, msg = s.retry, "shutting down"
		}
		_ = s.write(appendComment(appendRetry(nil, d), msg))
		return
	}
	defer h.unregister(s)
	reason := s.run(lastID)
	h.m.disconnectsBy[reason].Inc()
}

// finish gives net/http a fresh, short deadline to flush and end the body
// cleanly after the handler returns (the last write's deadline may be long
// past). A connection whose writes failed is closed by net/http instead.
func (s *stream) finish() {
	_ = s.rc.SetWriteDeadline(time.Now().Add(min(s.h.cfg.WriteTimeout.D(), time.Second)))
}

// flusherOf finds a flush that reports errors. It unwraps before using a
// plain http.Flusher because Echo's Response.Flush swallows write errors
// (and panics when flushing is unsupported); Echo's Response does not buffer,
// so flushing the writer it wraps flushes everything written through it.
func flusherOf(w http.ResponseWriter) func() error {
	for {
		switch v := w.(type) {
		case interface{ FlushError() error }:
			return v.FlushError
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		case http.Flusher:
			return func() error { v.Flush(); return nil }
		default:
			return func() error { return http.ErrNotSupported }
		}
	}
}

// write sends b with one write and one flush under a deadline at least half
// of stream.write_timeout away. Renewing the deadline is a runtime timer
// update behind several unwrapping layers (~12% of the server's CPU at 10k
// streams when done for every write), so it is renewed only when less than
// half of the timeout is left: a write gets between 1/2 and all of
// write_timeout to complete, and a stream written once a second renews it
// every fifth write. Other writers of the deadline (kick, bye, finish) only
// ever shorten it or end the stream, so the cached value errs on the side of
// renewing.
func (s *stream) write(b []byte) error {
	now := time.Now()
	if t := s.h.cfg.WriteTimeout.D(); s.deadline.Sub(now) < t/2 {
		s.deadline = now.Add(t)
		_ = s.setWriteDeadline(s.deadline) // ErrNotSupported: no deadline available
	}
	var err error
	if s.conn != nil {
		_, err = s.conn.Write(b)
	} else if _, err = s.w.Write(b); err == nil {
		err = s.flush()
	}
	s.lastWrite = now
	s.h.m.bytesSent.Add(float64(len(b)))
	return err
}

// writeErrReason classifies a failed write.
func writeErrReason(err error) string {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return disconnectWriteDeadline
	}
	return disconnectClient
}

// bye sends the final retry: hint of a stream the server ends (shutdown,
// lifetime), with a short deadline: the client may be gone already.
func (s *stream) bye() {
	_ = s.setWriteDeadline(time.Now().Add(min(s.h.cfg.WriteTimeout.D(), time.Second)))
	if s.conn != nil {
		_, _ = s.conn.Write(appendRetry(nil, s.retry))
	} else if _, err := s.w.Write(appendRetry(nil, s.retry)); err == nil {
		_ = s.flush()
	}
}

func parseTopics(vals []string) map[string]struct{} {
	var set map[string]struct{}
	n := 0
	for _, v := range vals {
		for item := range strings.SplitSeq(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" || n >= maxTopics {
				continue
			}
			n++
			if set == nil {
				set = map[string]struct{}{}
			}
			if len(item) <= maxTopicLen {
				set[item] = struct{}{}
			}
		}
	}
	return set
}

// run is the life of a registered stream; it returns the disconnect reason.
func (s *stream) run(lastID string) string {
	h := s.h

	// Position: the current tail node. Everything up to H comes from the
	// ring, everything after H from the nodes linked after cur.
	cur := h.tail.Load()
	H := cur.last
	floor := H // live events with seq <= floor are skipped
	oldest := h.store.Oldest()

	var reset ring.Reason
	var from ring.ID
	replay := false
	if lastID != "" {
		id, err := ring.ParseID(lastID)
		switch {
		case err != nil:
			reset = ring.Malformed
		case id.Epoch != h.epoch:
			reset = ring.UnknownEpoch
		case id.Seq > H:
			// Committed but not yet published to the hub (a poll client saw
			// it a moment ago): valid; skip live events up to it.
			if id.Seq <= h.store.Head().Seq {
				floor = id.Seq
			} else {
				reset = ring.Future
			}
		case id.Seq+1 < oldest.Seq:
			reset = ring.Expired
		case id.Seq < H:
			replay, from = true, id
		}
	}

	// First bytes: hello (and reset), flushed at once. hello carries id: H
	// when the stream starts live without a cursor, and reset always does, so
	// that a client reconnecting before the next frame resumes from where
	// this stream started instead of missing frames or repeating the reset.
	helloID := ""
	if lastID == "" {
		helloID = h.idString(H)
	}
	now := h.now()
	b := appendMessage(nil, typeHello, helloID, s.retry, helloData{
		Epoch:      epochString(h.epoch),
		Head:       h.idString(H),
		Oldest:     oldest.String(),
		ServerTime: now.UnixMilli(),
		RetryMS:    s.retry.Milliseconds(),
	})
	if reset != ring.OK {
		b = s.appendReset(b, reset, lastID, H)
	}
	if err := s.write(b); err != nil {
		return writeErrReason(err)
	}

	if replay {
		if reason := s.replay(from, H, lastID); reason != "" {
			return reason
		}
	}
	return s.live(cur, floor)
}

func (s *stream) appendReset(b []byte, reason ring.Reason, requested string, head uint64) []byte {
	h := s.h
	h.m.resetsBy[reason].Inc()
	// The requested ID is client input: it is sanitised for the event and
	// never logged, only its length.
	h.log.Debug("stream reset", "reason", string(reason), "requested_len", len(requested))
	return appendMessage(b, typeReset, h.idString(head), 0, resetData{
		Reason:    reason,
		Requested: quoteRequested(requested),
		Oldest:    h.store.Oldest().String(),
		Head:      h.idString(head),
	})
}

// tooFar says whether (from, H] holds more matching frames or bytes than the
// replay cap. It only counts (ScanView copies nothing), so that a replay is
// either complete or not started: never a silent partial replay.
func (s *stream) tooFar(from, H uint64) bool {
	maxF, maxB := s.h.cfg.ReplayMaxFrames, s.h.cfg.ReplayMaxBytes
	if maxF <= 0 && maxB <= 0 {
		return false
	}
	if s.topics == nil {
		if maxF > 0 && H-from > uint64(maxF) {
			return true // seqs are contiguous: H-from frames
		}
		if maxB <= 0 {
			return false
		}
	}
	frames, bytes, over := 0, 0, false
	_, err := s.h.store.ScanView(from, int(H-from), func(seq uint64, _ int64, topic, js []byte) bool {
		if seq > H {
			return false
		}
		if s.topics != nil {
			if _, ok := s.topics[string(topic)]; !ok {
				return true
			}
		}
		frames++
		bytes += len(js)
		over = (maxF > 0 && frames > maxF) || (maxB > 0 && bytes > maxB)
		return !over
	})
	return err == nil && over // on error the replay itself reports it
}

// replay sends the matching frames in (from, H] from the ring, or a reset
// too_far when they exceed the replay cap. It returns a disconnect reason, or
// "" to go on live (also after a reset when the ring trimmed past the cursor
// meanwhile).
//
// The common case — a client a few ticks behind — is one read: when the
// first chunk already reaches H, its size decides the cap. Only a replay of
// several chunks needs the counting pass (tooFar) before anything is sent.
//
// At most cap(h.replaySem) replays read and write at once: on a reconnect
// storm, thousands of concurrent bbolt reads only thrash caches and delay
// the live streams; queued ones finish in order instead of all at the end.
func (s *stream) replay(from ring.ID, H uint64, requested string) string {
	h := s.h
	select {
	case h.replaySem <- struct{}{}:
		defer func() { <-h.replaySem }()
	case <-s.gone:
		return disconnectClient
	case <-s.done:
		s.bye()
		return s.kickReason
	}
	h.m.replays.Inc()
	var match func([]byte) bool
	if s.topics != nil {
		match = func(t []byte) bool { _, ok := s.topics[string(t)]; return ok }
	}
	bp := getBuf()
	defer putBuf(bp)
	cursor := from
	first := true
	for cursor.Seq < H {
		select {
		case <-s.gone:
			return disconnectClient
		case <-s.done:
			s.bye()
			return s.kickReason
		default:
		}
		// Let live deliveries queued behind this replay run first.
		runtime.Gosched()
		// Encode straight from the read transaction's view into the write
		// buffer: no copy of the frames, no Frame structs, one encoding.
		// The transaction covers one bounded chunk and no socket write.
		buf := (*bp)[:0]
		n, size := 0, 0
		res := h.store.AfterView(cursor, match, ring.Limits{Frames: replayChunkFrames, Bytes: replayChunkBytes, Until: H},
			func(seq uint64, _ int64, _, js []byte) {
				buf = appendEvent(buf, ring.ID{Epoch: h.epoch, Seq: seq}, js)
				n++
				size += len(js)
			})
		*bp = buf
		if res.Err != nil {
			h.log.Error("stream replay read failed; closing the stream", "err", res.Err)
			return disconnectError
		}
		if res.Reset != ring.OK {
			if err := s.write(s.appendReset(nil, res.Reset, requested, H)); err != nil {
				return writeErrReason(err)
			}
			return ""
		}
		if first {
			first = false
			whole := !res.More
			maxF, maxB := h.cfg.ReplayMaxFrames, h.cfg.ReplayMaxBytes
			over := (maxF > 0 && n > maxF) || (maxB > 0 && size > maxB)
			if over || (!whole && s.tooFar(from.Seq, H)) {
				if err := s.write(s.appendReset(nil, ring.TooFar, requested, H)); err != nil {
					return writeErrReason(err)
				}
				return ""
			}
		}
		if n > 0 {
			err := s.write(buf)
			h.m.replayed.Add(float64(n))
			h.m.framesSent.Add(float64(n))
			if err != nil {
				return writeErrReason(err)
			}
		}
		cursor = res.Next
		if !res.More {
			break
		}
	}
	return ""
}

// live delivers nodes after cur until the stream ends.
func (s *stream) live(cur *node, floor uint64) string {
	h := s.h
	period := h.cfg.Heartbeat.D()
	beat := *h.beat.Load()
	var lifetime <-chan time.Time
	if ml := h.cfg.MaxLifetime.D(); ml > 0 {
		t := time.NewTimer(jitter(ml, 0.9, 1.1))
		defer t.Stop()
		lifetime = t.C
	}
	for {
		select {
		case <-cur.ready:
			var reason string
			if cur, reason = s.deliver(cur, floor); reason != "" {
				return reason
			}
		case <-beat:
			// The shared beat comes every period/4; a stream idle for
			// 3/4 of the period sends one, so heartbeats of an idle stream
			// are 3/4 to 1 period apart and no gap exceeds the period.
			beat = *h.beat.Load()
			if time.Since(s.lastWrite) < period*3/4 {
				continue
			}
			if err := s.write(appendHeartbeat(nil, h.idString(cur.last), h.now())); err != nil {
				return writeErrReason(err)
			}
		case <-lifetime:
			s.bye()
			return disconnectLifetime
		case <-s.done:
			s.bye()
			return s.kickReason
		case <-s.gone:
			return disconnectClient
		}
	}
}

// deliver writes every matching event after cur in one write and returns the
// new position. The hot path: with 10k streams it runs 10k times per publish.
func (s *stream) deliver(cur *node, floor uint64) (*node, string) {
	h := s.h
	if h.tail.Load().last-cur.last > uint64(h.cfg.QueueSize) {
		return cur, disconnectSlow
	}
	parts := s.parts[:0]
	count := 0
	for n := cur.next.Load(); n != nil; n = n.next.Load() {
		if n.first != cur.last+1 {
			return cur, disconnectResync
		}
		cur = n
		if s.topics == nil && n.first > floor {
			parts = append(parts, n.all)
			count += len(n.events)
			continue
		}
		for i := range n.events {
			e := &n.events[i]
			if e.seq <= floor {
				continue
			}
			if s.topics != nil {
				if _, ok := s.topics[e.topic]; !ok {
					continue
				}
			}
			parts = append(parts, e.b)
			count++
		}
	}
	var err error
	switch len(parts) {
	case 0:
	case 1:
		err = s.write(parts[0]) // shared bytes, written without a copy
	default:
		bp := getBuf()
		for _, p := range parts {
			*bp = append(*bp, p...)
		}
		err = s.write(*bp)
		putBuf(bp)
	}
	clear(parts) // do not keep old nodes' bytes alive
	s.parts = parts[:0]
	if count > 0 {
		h.m.framesSent.Add(float64(count))
		h.m.queueDepth.Observe(float64(count))
	}
	if err != nil {
		return cur, writeErrReason(err)
	}
	return cur, ""
}
