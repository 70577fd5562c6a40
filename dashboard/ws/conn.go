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
	deflate  bool // permessage-deflate was negotiated: the library frames messages
	m        *metrics

	// sub is the subscriber this sink serves, and known the transport's
	// Options.Known: each hello names the topics of its subscription's
	// filter that are not known (nil known: every topic is).
	sub   *hub.Subscriber
	known func(string) bool

	// pending holds events owed to the client before anything else (hello,
	// reset): the next message carries them in front of its own.
	pending []byte

	bad        atomic.Pointer[closeMsg] // set by the reader: a refused client message
	clientCode atomic.Int32             // the close code the client sent, if any
}

var _ hub.Sink = (*sink)(nil)

// testHookWrite, when set by a test, runs before every write.
var testHookWrite atomic.Pointer[func()]

// Hello queues the hello of a (re)subscription. Its filter is the one the
// subscriber serves now — the topics= of the URL or those of the subscribe
// being answered — and its unknown topics, if any, ride along.
func (s *sink) Hello(h hub.Hello, _ string) {
	if s.known != nil {
		if unknown := hub.UnknownTopics(s.sub.Topics(), s.known); len(unknown) > 0 {
			s.pending = appendEvent(s.pending, "hello", hub.HelloUnknown{Hello: h, UnknownTopics: unknown})
			return
		}
	}
	s.pending = appendEvent(s.pending, "hello", h)
}

func (s *sink) Reset(r hub.Reset, _ string) { s.pending = appendEvent(s.pending, "reset", r) }

func (s *sink) Write(parts [][]byte, _ int) (int, error) {
	b := s.pending
	s.pending = nil
	return s.send(b, parts...)
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

// send writes the events in first and rest (each ending in "\n") as one
// text message, without the last "\n", in one write(2) under the write
// deadline: the write timeout is the slow-consumer cut, as on an SSE stream.
//
// Without permessage-deflate the frame is built here — header and payload
// in one buffer — and written straight to the connection: a server frame is
// a 2–10 byte header and the bytes, and the library's own path (two locks
// taken through channels, a state check, its buffer, a per-message context
// whose timer would close the connection) cost a fifth more CPU per
// message at 10,000 connections. The library still writes the control
// frames (pong, close), each in one write on the same connection, whose
// lock keeps every frame whole. With permessage-deflate the library
// compresses and frames the message into the corked connection, and the
// result goes out the same way.
func (s *sink) send(first []byte, rest ...[]byte) (int, error) {
	if hook := testHookWrite.Load(); hook != nil {
		(*hook)()
	}
	n := len(first)
	for _, p := range rest {
		n += len(p)
	}
	n-- // the last event's "\n"
	bp := hub.GetBuf()
	b := *bp
	if !s.deflate {
		b = appendTextHeader(b, n)
	}
	h := len(b)
	b = append(b, first...)
	for _, p := range rest {
		b = append(b, p...)
	}
	b = b[:h+n]
	*bp = b
	defer hub.PutBuf(bp)
	var err error
	if !s.deflate {
		s.deadline.renew(s.nc.Conn, s.timeout)
		_, err = s.nc.Write(b)
	} else {
		s.nc.cork()
		err = s.c.Write(context.Background(), websocket.MessageText, b)
		s.deadline.renew(s.nc.Conn, s.timeout)
		if _, werr := s.nc.uncork(); err == nil {
			err = werr
		}
	}
	if err != nil {
		return 0, fmt.Errorf("websocket write: %w", err) // os.ErrDeadlineExceeded when the deadline passed
	}
	s.m.messages.Inc()
	s.m.bytes.Add(float64(n))
	return n, nil
}

// appendTextHeader appends the header of an unmasked, final text frame of n
// bytes (RFC 6455 5.2).
func appendTextHeader(b []byte, n int) []byte {
	switch {
	case n < 126:
		return append(b, 0x81, byte(n))
	case n <= 0xffff:
		return append(b, 0x81, 126, byte(n>>8), byte(n))
	default:
		return append(b, 0x81, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// refuse records the close a client's message earned; the reader then
// stops, and the subscriber ends with it.
func (s *sink) refuse(code websocket.StatusCode, reason string) {
	s.bad.CompareAndSwap(nil, &closeMsg{code, reason})
}
