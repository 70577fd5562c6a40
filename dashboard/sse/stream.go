package sse

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"livedash/dashboard/hub"
)

// stream is one open SSE response: the hub.Sink of one subscriber. Only the
// goroutine running the subscriber touches it, except Interrupt.
type stream struct {
	timeout time.Duration // the write timeout (stream.write_timeout)
	retry   time.Duration // this connection's retry: hint

	// conn is the hijacked connection of an HTTP/1.1 stream (nil: the
	// stream writes through w and flushes).
	conn  net.Conn
	w     http.ResponseWriter
	rc    *http.ResponseController
	flush func() error

	// pending is owed to the client before anything else (hello, reset):
	// the next write sends it in front of its own bytes.
	pending []byte
	unknown []string // topics of the filter that are not known, for hello

	// deadline is the write deadline writeRaw last set: on conn, or the
	// watchdog's. Through net/http it is guarded by mu.
	deadline time.Time

	// mu orders the writer against Interrupt and the watchdog, which run
	// in other goroutines.
	mu sync.Mutex
	// interrupted: Interrupt's short deadline is set, and no renewal of
	// the writer may undo it.
	interrupted bool
	// Streams written through net/http keep their write deadline with a
	// timer of their own (see writeRaw): watchdog fires at deadline, and
	// cuts the write in progress (writing) if there is one. ended: the
	// handler is returning, and rc is not to be used any more.
	watchdog *time.Timer
	writing  bool
	ended    bool
}

var _ hub.Sink = (*stream)(nil)

// testHookWrite, when set by a test, runs before every write.
var testHookWrite atomic.Pointer[func()]

func (s *stream) Hello(h hub.Hello, id string) {
	if len(s.unknown) > 0 {
		s.pending = appendMessage(s.pending, typeHello, id, s.retry, hub.HelloUnknown{Hello: h, UnknownTopics: s.unknown})
		return
	}
	s.pending = appendMessage(s.pending, typeHello, id, s.retry, h)
}

func (s *stream) Reset(r hub.Reset, id string) {
	s.pending = appendMessage(s.pending, typeReset, id, 0, r)
}

func (s *stream) Write(parts [][]byte, _ int) (int, error) {
	if s.pending == nil && len(parts) == 1 {
		return s.writeRaw(parts[0]) // shared bytes, written without a copy
	}
	// Copied into one buffer rather than written as net.Buffers: writev is
	// used only on the bare *net.TCPConn, and a listener wrapper (a
	// connection limit) would turn it into one write per part.
	bp := hub.GetBuf()
	b := append(*bp, s.pending...)
	s.pending = nil
	for _, p := range parts {
		b = append(b, p...)
	}
	*bp = b
	n, err := s.writeRaw(b)
	hub.PutBuf(bp)
	return n, err
}

func (s *stream) Heartbeat(head string, now time.Time) (int, error) {
	b := appendHeartbeat(s.pending, head, now)
	s.pending = nil
	return s.writeRaw(b)
}

func (s *stream) Flush() (int, error) {
	if s.pending == nil {
		return 0, nil
	}
	b := s.pending
	s.pending = nil
	return s.writeRaw(b)
}

// Interrupt shortens the write deadline, so that a write blocked on a client
// that stopped reading returns within a second; later writes of the
// subscriber get no more than that either. Setting a connection's deadline
// is safe from any goroutine; a writer that is not stuck sets its own
// deadline again before its final retry: hint.
func (s *stream) Interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interrupted = true
	_ = s.setWriteDeadline(time.Now().Add(s.shortTimeout()))
}

// shortTimeout is the time a write gets once the stream is ending.
func (s *stream) shortTimeout() time.Duration { return min(s.timeout, time.Second) }

// setWriteDeadline sets the write deadline on the hijacked connection, or
// through the ResponseController. Safe from any goroutine.
func (s *stream) setWriteDeadline(t time.Time) error {
	if s.conn != nil {
		return s.conn.SetWriteDeadline(t)
	}
	return s.rc.SetWriteDeadline(t)
}

// writeRaw sends b with one write (and one flush) under a deadline.
//
// On a hijacked connection (HTTP/1.1) the deadline is at least half of the
// write timeout away. Renewing it is a runtime timer update behind several
// unwrapping layers, costly when done for every write of 10,000 streams, so
// it is renewed only when less than half of the timeout is left: a write
// gets between 1/2 and all of the timeout to complete. A deadline that
// passes while the connection is idle only fails a write that would come
// after it, and every write renews a deadline that is that close. Other
// writers of the deadline (Interrupt, bye) only ever shorten it or end the
// stream, so the cached value errs on the side of renewing.
//
// Through net/http (HTTP/2; HTTP/1.x only when the connection could not be
// hijacked) the deadline is the same, renewed the same way, but kept by the
// stream's own timer rather than net/http's. Go's HTTP/2 server resets a
// stream when its write deadline passes, whether a write is pending or not,
// so a deadline left armed there would cut every stream idle for the write
// timeout (which may be shorter than the heartbeat); and each change of it
// is a message to the connection's serving goroutine, which costs more than
// a runtime timer when made for every write. The watchdog, when it fires,
// cuts only a write still in progress: it sets a write deadline that has
// passed, which ends the write (and the stream) at once; an idle stream is
// left alone, and its next write renews the deadline.
func (s *stream) writeRaw(b []byte) (int, error) {
	if hook := testHookWrite.Load(); hook != nil {
		(*hook)()
	}
	now := time.Now()
	if s.conn != nil {
		if s.deadline.Sub(now) < s.timeout/2 {
			s.deadline = now.Add(s.timeout)
			s.mu.Lock()
			if !s.interrupted { // else Interrupt's deadline stands
				_ = s.conn.SetWriteDeadline(s.deadline)
			}
			s.mu.Unlock()
		}
		return s.conn.Write(b)
	}
	s.mu.Lock()
	if s.deadline.Sub(now) < s.timeout/2 {
		s.deadline = now.Add(s.timeout)
		if s.watchdog == nil {
			s.watchdog = time.AfterFunc(s.timeout, s.expire)
		} else {
			s.watchdog.Reset(s.timeout)
		}
	}
	s.writing = true
	s.mu.Unlock()
	n, err := s.w.Write(b)
	if err == nil {
		err = s.flush()
	}
	s.mu.Lock()
	s.writing = false
	s.mu.Unlock()
	return n, err
}

// expire is the watchdog's: a write in progress past the deadline gets a
// write deadline that has passed, and fails (over HTTP/2 net/http resets
// the stream). A firing that a renewal overtook finds the deadline ahead,
// and does nothing.
func (s *stream) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || !s.writing || time.Now().Before(s.deadline) {
		return
	}
	_ = s.rc.SetWriteDeadline(s.deadline) // ErrNotSupported: no deadline available
}

// bye sends the final retry: hint of a stream the server ends (shutdown,
// lifetime), with a short deadline: the client may be gone already.
// Anything still pending (hello) goes first, in the same write.
func (s *stream) bye() {
	_ = s.setWriteDeadline(time.Now().Add(s.shortTimeout()))
	b := appendRetry(s.pending, s.retry)
	s.pending = nil
	if s.conn != nil {
		_, _ = s.conn.Write(b)
	} else if _, err := s.w.Write(b); err == nil {
		_ = s.flush()
	}
}

// finish stops the watchdog, for good, and gives net/http a fresh, short
// deadline to flush and end the body cleanly after the handler returns
// (writeRaw leaves none of net/http's armed, and bye's may be nearly spent).
// A connection whose writes failed is closed by net/http instead. The
// response ends right after it, and over HTTP/2 closing the stream stops
// its deadline: it cannot fire on an idle stream.
func (s *stream) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	if s.watchdog != nil {
		s.watchdog.Stop()
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.shortTimeout()))
}
