package hub

import (
	"bufio"
	"bytes"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"livedash/dashboard/store"
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

// ConnServer returns a function that serves a stream on a connection whose
// request head the server has read itself, for a plain `GET
// /api/v1/stream` over HTTP/1.1 (the server's front door: see
// dashboard.Server.Serve). It does what ServeStream does for a request
// hijacked before its head, without net/http's per-connection work — the
// request parsed into maps, its buffers, its background reader and the
// hijack — which was a sixth of the server's CPU in a reconnect storm.
// extra are the headers the server's middleware sets on /api/ answers (the
// response head is built once, sorted as net/http sorts it, and only its
// Date changes); requests, if not nil, counts each stream as the server's
// request metric would.
//
// The function serves until the stream ends and closes conn. query is the
// raw query, lastEventID the Last-Event-ID header's value ("" if none).
func (h *Hub) ConnServer(extra http.Header, requests prometheus.Counter) func(conn net.Conn, query, lastEventID string) {
	hdr := extra.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	setStreamHeaders(hdr)
	start := appendHeadStart(nil, true, hdr)
	return func(conn net.Conn, query, lastEventID string) {
		h.enter()
		defer h.leave()
		defer conn.Close()
		q, _ := url.ParseQuery(query) // as Request.URL.Query: bad pairs are dropped
		s := h.newStream(connIP(conn))
		lastID := s.request(q, lastEventID)
		s.pending = appendHeadEnd(append(make([]byte, 0, len(start)+64), start...), true, hdr, time.Now())
		s.headLen = len(s.pending)
		if requests != nil {
			requests.Inc() // before the first write: a client that sees the stream sees it counted
		}
		s.own(conn)
		s.serve(lastID)
	}
}

// connIP is the client address of conn, as clientIP reads it from a
// request's RemoteAddr.
func connIP(conn net.Conn) netip.Addr {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return clientIP(conn.RemoteAddr().String())
}

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

	// pending is owed to the client before anything else: the response
	// head of a stream hijacked before net/http wrote it, then hello (and
	// reset). The next write sends it in front of its own bytes, so that a
	// reconnect's head, hello and first replay chunk cost one write(2).
	// Whoever waits for anything first sends it (flushPending): the first
	// bytes of a stream are never held back by a queue.
	pending []byte
	headLen int // leading bytes of pending that are the HTTP head, not SSE (not in bytesSent)

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

func (h *Hub) newStream(ip netip.Addr) *stream {
	return &stream{h: h, ip: ip, done: make(chan struct{}), retry: jitter(h.cfg.Retry.D(), 1, 1.5)}
}

// request takes the topics from the query and returns the cursor to resume
// from: the Last-Event-ID header, else the lastEventId parameter.
func (s *stream) request(q url.Values, lastEventID string) string {
	s.topics = parseTopics(q["topics"])
	if lastEventID == "" {
		lastEventID = q.Get("lastEventId")
	}
	return lastEventID
}

// setStreamHeaders sets the headers of every stream response (DESIGN §4;
// FAULTS row 15: proxies must not buffer or compress it).
func setStreamHeaders(hdr http.Header) {
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	hdr.Del("Content-Length")
	hdr.Del("Content-Encoding")
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
	setStreamHeaders(hdr)
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

	s := h.newStream(clientIP(r.RemoteAddr))
	s.w, s.rc = w, http.NewResponseController(w)
	lastID := s.request(r.URL.Query(), r.Header.Get("Last-Event-ID"))

	hijacked := r.ProtoMajor == 1 && s.hijackBeforeHead(w, r)
	if !hijacked {
		w.WriteHeader(http.StatusOK)
		hijacked = r.ProtoMajor == 1 && s.hijack()
	}
	if hijacked {
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

// hijackBeforeHead takes over the connection of an HTTP/1.1 stream before
// net/http has written anything, and queues the response head in s.pending:
// it then goes out in the same write as hello (and the first replay chunk)
// instead of in a write of its own, as Hijack would flush it. The head is the
// one net/http writes for this header set (see appendResponseHead).
//
// Only net/http's own writer is hijacked this way, directly or under Echo's
// Response (which is then marked as sent with 200: its Before hooks run, and
// the middleware that reads Status or Committed after the handler sees what
// it saw before). A writer wrapped by anything else — a middleware recording
// the status it is given — takes the path that calls WriteHeader first
// (hijack). HEAD requests do too: they get no body.
func (s *stream) hijackBeforeHead(w http.ResponseWriter, r *http.Request) bool {
	inner := w
	er, isEcho := w.(*echo.Response)
	if isEcho {
		if er.Committed {
			return false
		}
		inner = er.Writer
	}
	if r.Method == http.MethodHead || !isNetHTTPWriter(inner) {
		return false
	}
	conn, brw, err := s.rc.Hijack()
	if err != nil {
		return false
	}
	hdr := w.Header()
	if isEcho {
		// Echo's WriteHeader runs its Before hooks (which may still set
		// headers) and records the status; the hijacked writer must not see
		// the call (net/http would log it), so a stand-in takes it.
		er.Writer = headerOnly(hdr)
		er.WriteHeader(http.StatusOK)
		er.Writer = inner
	}
	s.pending = appendResponseHead(nil, r, hdr, time.Now())
	s.headLen = len(s.pending)
	s.attach(conn, brw)
	return true
}

// isNetHTTPWriter reports whether w is net/http's own HTTP/1.x response
// writer. Its type is unexported, so it is recognised by name; if net/http
// ever renames it, streams only lose the early hijack (one more write per
// connection), which the write-count test reports.
func isNetHTTPWriter(w http.ResponseWriter) bool {
	t := reflect.TypeOf(w)
	return t.Kind() == reflect.Pointer && t.Elem().PkgPath() == "net/http" && t.Elem().Name() == "response"
}

// headerOnly takes Echo's WriteHeader in place of a hijacked writer.
type headerOnly http.Header

func (h headerOnly) Header() http.Header     { return http.Header(h) }
func (headerOnly) WriteHeader(int)           {}
func (headerOnly) Write([]byte) (int, error) { return 0, http.ErrHijacked }

// headExclude are the handler headers net/http drops from the head of a
// close-delimited HTTP/1.x response: it decides the framing and the
// connection's fate itself (Transfer-Encoding: identity only asks for no
// chunking; serve deletes Content-Length).
var headExclude = map[string]bool{"Transfer-Encoding": true, "Content-Length": true, "Connection": true}

// appendResponseHead appends the head net/http's chunkWriter.writeHeader
// writes for a 200 with hdr and Transfer-Encoding: identity and no
// Content-Length (Go 1.26, net/http/server.go): the status line in the
// request's version, the handler's headers sorted and sanitised by
// Header.WriteSubset (without the excluded ones and trailer declarations),
// Date unless the handler set the key, and Connection: close for HTTP/1.1
// (HTTP/1.0 closes without saying so). The body is then the raw event stream,
// ended by closing the connection. TestEarlyHeadMatchesNetHTTP compares the
// two byte for byte.
func appendResponseHead(b []byte, r *http.Request, hdr http.Header, now time.Time) []byte {
	is11 := r.ProtoAtLeast(1, 1)
	return appendHeadEnd(appendHeadStart(b, is11, hdr), is11, hdr, now)
}

// appendHeadStart appends the part of appendResponseHead's head that does
// not change with time: the status line and the handler's headers.
func appendHeadStart(b []byte, is11 bool, hdr http.Header) []byte {
	if is11 {
		b = append(b, "HTTP/1.1 200 OK\r\n"...)
	} else {
		b = append(b, "HTTP/1.0 200 OK\r\n"...)
	}
	exclude := headExclude
	for k := range hdr {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			if len(exclude) == len(headExclude) {
				exclude = maps.Clone(headExclude)
			}
			exclude[k] = true
		}
	}
	buf := bytes.NewBuffer(b)
	_ = hdr.WriteSubset(buf, exclude) // a bytes.Buffer does not fail
	return buf.Bytes()
}

// appendHeadEnd appends the rest: Date, Connection and the empty line.
func appendHeadEnd(b []byte, is11 bool, hdr http.Header, now time.Time) []byte {
	if _, ok := hdr["Date"]; !ok {
		b = append(b, "Date: "...)
		b = now.UTC().AppendFormat(b, http.TimeFormat)
		b = append(b, "\r\n"...)
	}
	if is11 {
		b = append(b, "Connection: close\r\n"...)
	}
	return append(b, "\r\n"...)
}

// hijack takes over the connection of an HTTP/1.1 stream after its response
// head, when hijackBeforeHead could not (memory per idle stream: net/http
// keeps ~10 KiB of buffers, the request and a background reader goroutine
// per connection while the handler runs). The response head is flushed by
// Hijack itself; the body is unframed (Transfer-Encoding: identity), so the
// raw SSE bytes follow it on the connection, which ends the body by closing.
// It reports false when the writer cannot be hijacked (HTTP/2, test
// recorders).
func (s *stream) hijack() bool {
	conn, brw, err := s.rc.Hijack()
	if err != nil {
		return false
	}
	s.attach(conn, brw)
	return true
}

// attach makes a hijacked connection the stream's (see own), as net/http's
// reader noticed the client going away.
func (s *stream) attach(conn net.Conn, brw *bufio.ReadWriter) {
	// Nothing is buffered (Hijack flushed the head, or wrote none); were
	// anything left, it must go out before the events. A failed flush
	// means the client is gone: the first write fails, as would the reader.
	_ = brw.Writer.Flush()
	s.own(conn)
}

// own makes conn the stream's: writes go to it, and a goroutine blocked in
// Read notices the client going away at once.
func (s *stream) own(conn net.Conn) {
	s.conn = conn
	gone := make(chan struct{})
	s.gone = gone
	go readUntilGone(conn, gone)
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

// write sends s.pending and b with one write and one flush under a deadline
// at least half of stream.write_timeout away. Renewing the deadline is a
// runtime timer update behind several unwrapping layers (~12% of the
// server's CPU at 10k streams when done for every write), so it is renewed
// only when less than half of the timeout is left: a write gets between 1/2
// and all of write_timeout to complete, and a stream written once a second
// renews it every fifth write. Other writers of the deadline (kick, bye,
// finish) only ever shorten it or end the stream, so the cached value errs on
// the side of renewing.
func (s *stream) write(b []byte) error {
	if s.pending == nil {
		return s.writeRaw(b)
	}
	// Copied into one buffer rather than written as net.Buffers: writev
	// is used only on the bare *net.TCPConn, and a listener wrapper (a
	// connection limit) would turn it into one write per part.
	bp := getBuf()
	*bp = append(append(*bp, s.pending...), b...)
	s.pending = nil
	err := s.writeRaw(*bp)
	putBuf(bp)
	return err
}

// flushPending sends s.pending, if any, on its own.
func (s *stream) flushPending() error {
	if s.pending == nil {
		return nil
	}
	b := s.pending
	s.pending = nil
	return s.writeRaw(b)
}

func (s *stream) writeRaw(b []byte) error {
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
	s.h.m.bytesSent.Add(float64(len(b) - s.headLen))
	s.headLen = 0 // only ever in the first write
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
// lifetime), with a short deadline: the client may be gone already. Anything
// still pending (head, hello) goes first, in the same write.
func (s *stream) bye() {
	_ = s.setWriteDeadline(time.Now().Add(min(s.h.cfg.WriteTimeout.D(), time.Second)))
	b := appendRetry(s.pending, s.retry)
	s.pending = nil
	if s.conn != nil {
		_, _ = s.conn.Write(b)
	} else if _, err := s.w.Write(b); err == nil {
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

	var reset store.Reason
	var from store.ID
	replay := false
	if lastID != "" {
		id, err := store.ParseID(lastID)
		switch {
		case err != nil:
			reset = store.Malformed
		case id.Epoch != h.epoch:
			reset = store.UnknownEpoch
		case id.Seq > H:
			// Committed but not yet published to the hub (a poll client saw
			// it a moment ago): valid; skip live events up to it.
			if id.Seq <= h.store.Head().Seq {
				floor = id.Seq
			} else {
				reset = store.Future
			}
		case id.Seq+1 < oldest.Seq:
			reset = store.Expired
		case id.Seq < H:
			replay, from = true, id
		}
	}

	// First bytes: hello (and reset), sent at once: with the response head
	// of a hijacked stream and the first replay chunk, if any, or alone.
	// hello carries id: H when the stream starts live without a cursor, and
	// reset always does, so that a client reconnecting before the next
	// frame resumes from where this stream started instead of missing
	// frames or repeating the reset.
	helloID := ""
	if lastID == "" {
		helloID = h.idString(H)
	}
	now := h.now()
	s.pending = appendMessage(s.pending, typeHello, helloID, s.retry, helloData{
		Epoch:      epochString(h.epoch),
		Head:       h.idString(H),
		Oldest:     oldest.String(),
		ServerTime: now.UnixMilli(),
		RetryMS:    s.retry.Milliseconds(),
	})
	if reset != store.OK {
		s.pending = s.appendReset(s.pending, reset, lastID, H)
	}

	if replay {
		if reason := s.replay(from, H, lastID); reason != "" {
			return reason
		}
	}
	// Nothing (more) to send before the first live event: what is pending
	// goes now.
	if err := s.flushPending(); err != nil {
		return writeErrReason(err)
	}
	return s.live(cur, floor)
}

func (s *stream) appendReset(b []byte, reason store.Reason, requested string, head uint64) []byte {
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
// meanwhile). What is pending (head, hello) goes out with its first write.
//
// The common case — a client a few ticks behind — is one chunk, and in a
// reconnect storm many clients resume from the same cursor to the same head:
// the first chunk is read and encoded once and shared through h.replays
// (firstChunk). Only a replay of several chunks reads the rest itself.
//
// At most cap(h.replaySem) replays read or write at once: on a reconnect
// storm, thousands of concurrent bbolt reads only thrash caches, and
// thousands of concurrent replay writes delay the live streams; queued ones
// finish in order instead of all at the end. A stream writing a shared chunk
// takes a slot too: without it, a storm's thousands of writes of the same
// chunk go out at once, ahead of the live streams' writes.
func (s *stream) replay(from store.ID, H uint64, requested string) string {
	h := s.h
	held := false // holds a slot of h.replaySem
	defer func() {
		if held {
			<-h.replaySem
		}
	}()
	c, reset, reason := s.firstChunk(from, H, &held)
	if reason != "" {
		return reason
	}
	// A shared chunk still takes a slot to be written: thousands of
	// streams writing their replays at once would starve the live ones.
	if reason := s.acquireReplaySlot(&held); reason != "" {
		return reason
	}
	h.m.replays.Inc()
	if reset == store.OK && c.tooFar {
		reset = store.TooFar
	}
	if reset != store.OK {
		if err := s.write(s.appendReset(nil, reset, requested, H)); err != nil {
			return writeErrReason(err)
		}
		return ""
	}
	if c.n > 0 {
		err := s.write(c.b)
		h.m.replayed.Add(float64(c.n))
		h.m.framesSent.Add(float64(c.n))
		if err != nil {
			return writeErrReason(err)
		}
	}
	if !c.more {
		return ""
	}

	// The rest, chunk by chunk, each written before the next is read.
	if reason := s.acquireReplaySlot(&held); reason != "" {
		return reason
	}
	match := s.matcher()
	bp := getBuf()
	defer putBuf(bp)
	cursor := c.next
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
		n := 0
		res := h.store.AfterView(cursor, match, store.Limits{Frames: replayChunkFrames, Bytes: replayChunkBytes, Until: H},
			func(seq uint64, _ int64, _, js []byte) {
				buf = appendEvent(buf, store.ID{Epoch: h.epoch, Seq: seq}, js)
				n++
			})
		*bp = buf
		if res.Err != nil {
			h.log.Error("stream replay read failed; closing the stream", "err", res.Err)
			return disconnectError
		}
		if res.Reset != store.OK {
			if err := s.write(s.appendReset(nil, res.Reset, requested, H)); err != nil {
				return writeErrReason(err)
			}
			return ""
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

// firstChunk returns the first chunk of the replay (from, H] for s's topics:
// shared with other streams resuming with the same key, or read by s and then
// shared. reset is a cursor the ring trimmed meanwhile (never shared); reason
// ends the stream. *held says whether s holds a replay slot (it takes one to
// read).
func (s *stream) firstChunk(from store.ID, H uint64, held *bool) (*replayChunk, store.Reason, string) {
	h := s.h
	key := newReplayKey(from.Seq, H, s.topics)
	for {
		c, build := h.replays.claim(key)
		if !build {
			select {
			case <-c.ready:
			default:
				// Another stream reads it, or waits for a slot to: hello
				// first, as for any wait.
				if err := s.flushPending(); err != nil {
					return nil, store.OK, writeErrReason(err)
				}
				select {
				case <-c.ready:
				case <-s.gone:
					return nil, store.OK, disconnectClient
				case <-s.done:
					s.bye()
					return nil, store.OK, s.kickReason
				}
			}
			if c.ok {
				return c, store.OK, ""
			}
			continue // its reader gave up: claim it again
		}
		if reason := s.acquireReplaySlot(held); reason != "" {
			h.replays.fail(c)
			return nil, store.OK, reason
		}
		select {
		case <-s.gone:
			h.replays.fail(c)
			return nil, store.OK, disconnectClient
		case <-s.done:
			h.replays.fail(c)
			s.bye()
			return nil, store.OK, s.kickReason
		default:
		}
		runtime.Gosched() // as in replay: live deliveries first
		reset, err := s.readFirstChunk(c, from, H)
		if err != nil {
			h.replays.fail(c)
			h.log.Error("stream replay read failed; closing the stream", "err", err)
			return nil, store.OK, disconnectError
		}
		if reset != store.OK {
			h.replays.fail(c)
			return nil, reset, ""
		}
		h.replays.done(c)
		return c, store.OK, ""
	}
}

// readFirstChunk fills c from the store. When the first chunk already reaches
// H its size decides the cap; only a replay of several chunks needs the
// counting pass (tooFar), so that a replay is either complete or not started:
// never a silent partial replay.
func (s *stream) readFirstChunk(c *replayChunk, from store.ID, H uint64) (store.Reason, error) {
	h := s.h
	bp := getBuf()
	defer putBuf(bp)
	buf := (*bp)[:0]
	n, size := 0, 0
	res := h.store.AfterView(from, s.matcher(), store.Limits{Frames: replayChunkFrames, Bytes: replayChunkBytes, Until: H},
		func(seq uint64, _ int64, _, js []byte) {
			buf = appendEvent(buf, store.ID{Epoch: h.epoch, Seq: seq}, js)
			n++
			size += len(js)
		})
	*bp = buf
	if res.Err != nil {
		return store.OK, res.Err
	}
	if res.Reset != store.OK {
		return res.Reset, nil
	}
	maxF, maxB := h.cfg.ReplayMaxFrames, h.cfg.ReplayMaxBytes
	over := (maxF > 0 && n > maxF) || (maxB > 0 && size > maxB)
	if over || (res.More && s.tooFar(from.Seq, H)) {
		c.tooFar = true
		return store.OK, nil
	}
	// An exact copy: the pooled buffer goes back, the entry keeps only its
	// bytes.
	c.b = slices.Clone(buf)
	c.n, c.next, c.more = n, res.Next, res.More
	return store.OK, nil
}

// acquireReplaySlot takes a slot of h.replaySem unless *held. When none is
// free it sends what is pending first, then waits.
func (s *stream) acquireReplaySlot(held *bool) string {
	if *held {
		return ""
	}
	select {
	case s.h.replaySem <- struct{}{}:
		*held = true
		return ""
	default:
	}
	if err := s.flushPending(); err != nil {
		return writeErrReason(err)
	}
	select {
	case s.h.replaySem <- struct{}{}:
		*held = true
		return ""
	case <-s.gone:
		return disconnectClient
	case <-s.done:
		s.bye()
		return s.kickReason
	}
}

// matcher is the topic filter for the ring's reads (nil: every topic).
func (s *stream) matcher() func([]byte) bool {
	if s.topics == nil {
		return nil
	}
	return func(t []byte) bool { _, ok := s.topics[string(t)]; return ok }
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
