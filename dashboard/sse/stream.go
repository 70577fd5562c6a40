package sse

import (
	"net"
	"net/http"
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
	pending  []byte
	deadline time.Time // the write deadline writeRaw last set
	unknown  []string  // topics of the filter that are not known, for hello
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
// that stopped reading returns within a second. Setting a connection's
// deadline is safe from any goroutine; a writer that is not stuck sets its
// own deadline again before its final retry: hint.
func (s *stream) Interrupt() {
	_ = s.setWriteDeadline(time.Now().Add(min(s.timeout, time.Second)))
}

// setWriteDeadline sets the write deadline on the hijacked connection, or
// through the ResponseController. Safe from any goroutine.
func (s *stream) setWriteDeadline(t time.Time) error {
	if s.conn != nil {
		return s.conn.SetWriteDeadline(t)
	}
	return s.rc.SetWriteDeadline(t)
}

// writeRaw sends b with one write (and one flush) under a deadline at least
// half of the write timeout away. Renewing the deadline is a runtime timer
// update behind several unwrapping layers, costly when done for every write
// of 10,000 streams, so it is renewed only when less than half of the
// timeout is left: a write gets between 1/2 and all of the timeout to
// complete. Other writers of the deadline (Interrupt, bye, finish) only ever
// shorten it or end the stream, so the cached value errs on the side of
// renewing.
func (s *stream) writeRaw(b []byte) (int, error) {
	if hook := testHookWrite.Load(); hook != nil {
		(*hook)()
	}
	now := time.Now()
	if s.deadline.Sub(now) < s.timeout/2 {
		s.deadline = now.Add(s.timeout)
		_ = s.setWriteDeadline(s.deadline) // ErrNotSupported: no deadline available
	}
	var n int
	var err error
	if s.conn != nil {
		n, err = s.conn.Write(b)
	} else if n, err = s.w.Write(b); err == nil {
		err = s.flush()
	}
	return n, err
}

// bye sends the final retry: hint of a stream the server ends (shutdown,
// lifetime), with a short deadline: the client may be gone already.
// Anything still pending (hello) goes first, in the same write.
func (s *stream) bye() {
	_ = s.setWriteDeadline(time.Now().Add(min(s.timeout, time.Second)))
	b := appendRetry(s.pending, s.retry)
	s.pending = nil
	if s.conn != nil {
		_, _ = s.conn.Write(b)
	} else if _, err := s.w.Write(b); err == nil {
		_ = s.flush()
	}
}

// finish gives net/http a fresh, short deadline to flush and end the body
// cleanly after the handler returns (the last write's deadline may be long
// past). A connection whose writes failed is closed by net/http instead.
func (s *stream) finish() {
	_ = s.rc.SetWriteDeadline(time.Now().Add(min(s.timeout, time.Second)))
}
