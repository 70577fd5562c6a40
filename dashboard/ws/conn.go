package ws

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"livedash/dashboard/hub"
)

// sink is one connection's hub.Sink. Only the goroutine running the
// subscriber calls it, except Interrupt, and the reader's refuse and
// clientCode.
type sink struct {
	c        *websocket.Conn
	nc       *conn         // the hijacked connection under c
	timeout  time.Duration // the write timeout (stream.write_timeout)
	deadline deadline
	m        *metrics

	// pending holds events owed to the client before anything else (hello,
	// reset): the next message carries them in front of its own.
	pending []byte

	bad        atomic.Pointer[closeMsg] // set by the reader: a refused client message
	clientCode atomic.Int32             // the close code the client sent, if any
}

var _ hub.Sink = (*sink)(nil)

// testHookWrite, when set by a test, runs before every write.
var testHookWrite atomic.Pointer[func()]

func (s *sink) Hello(h hub.Hello, _ string) { s.pending = appendEvent(s.pending, "hello", h) }

func (s *sink) Reset(r hub.Reset, _ string) { s.pending = appendEvent(s.pending, "reset", r) }

func (s *sink) Write(parts [][]byte, _ int) (int, error) {
	if s.pending == nil && len(parts) == 1 {
		return s.send(parts[0]) // shared bytes: the library copies them into its buffer
	}
	bp := hub.GetBuf()
	b := append(*bp, s.pending...)
	s.pending = nil
	for _, p := range parts {
		b = append(b, p...)
	}
	*bp = b
	n, err := s.send(b)
	hub.PutBuf(bp)
	return n, err
}

func (s *sink) Heartbeat(head string, now time.Time) (int, error) {
	b := appendHeartbeat(s.pending, head, now)
	s.pending = nil
	return s.send(b)
}

func (s *sink) Flush() (int, error) {
	if s.pending == nil {
		return 0, nil
	}
	b := s.pending
	s.pending = nil
	return s.send(b)
}

// Interrupt shortens the write deadline of the connection, so that a write
// blocked on a client that stopped reading returns within a second (the
// subscriber was kicked: shutdown). A write that is not stuck completes,
// and so does the close frame after it.
func (s *sink) Interrupt() {
	_ = s.nc.SetWriteDeadline(time.Now().Add(min(s.timeout, time.Second)))
}

// send writes events (each ending in "\n") as one text message, without the
// last "\n", in one write(2) under the write deadline: the write timeout is
// the slow-consumer cut, as on an SSE stream. The library frames the message
// into the corked connection (so it never blocks there, and needs no
// context: a context that expires would close the connection from a timer
// of its own, one per message), then the frame goes out in one write.
func (s *sink) send(b []byte) (int, error) {
	if hook := testHookWrite.Load(); hook != nil {
		(*hook)()
	}
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	s.nc.cork()
	err := s.c.Write(context.Background(), websocket.MessageText, b)
	s.deadline.renew(s.nc.Conn, s.timeout)
	_, werr := s.nc.uncork()
	if err == nil {
		err = werr
	}
	if err != nil {
		return 0, fmt.Errorf("websocket write: %w", err) // os.ErrDeadlineExceeded when the deadline passed
	}
	s.m.messages.Inc()
	s.m.bytes.Add(float64(len(b)))
	return len(b), nil
}

// refuse records the close a client's message earned; the reader then
// stops, and the subscriber ends with it.
func (s *sink) refuse(code websocket.StatusCode, reason string) {
	s.bad.CompareAndSwap(nil, &closeMsg{code, reason})
}
