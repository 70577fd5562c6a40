package ws

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"time"

	"livedash/dashboard/hub"
)

// Buffers the WebSocket library reads and writes through. net/http hands a
// hijacked connection over with 4 KiB buffers each way; a connection here
// reads a few small client messages in its life and writes through conn's
// cork, so small buffers do: an idle connection holds 8 KiB less (at
// 10,000 connections, 80 MiB).
//
// writeBufSize must hold a whole control frame (at most 2+125 bytes from a
// server): the library flushes each frame it writes, so a pong or a close is
// one conn.Write, and no frame the sink writes can land inside it.
const (
	readBufSize  = 512
	writeBufSize = 256
)

// hijackCapture hands the WebSocket library a conn (the hijacked
// connection, corkable) with small buffers, and keeps it for the transport.
type hijackCapture struct {
	http.ResponseWriter
	conn *conn
}

func (w *hijackCapture) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nc, brw, err
	}
	c := &conn{Conn: nc}
	w.conn = c
	r := brw.Reader
	if r.Buffered() == 0 {
		// The library reads on from the conn returned here; bytes a client
		// sent right behind its handshake stay in net/http's reader, which
		// is then kept.
		r = bufio.NewReaderSize(c, readBufSize)
	}
	return c, bufio.NewReadWriter(r, bufio.NewWriterSize(c, writeBufSize)), nil
}

// conn is the hijacked connection under the WebSocket library. While
// corked, what the library writes is gathered and sent by uncork in one
// write under the stream's write deadline: a message (a tick) is one
// write(2) whatever its size, as on an SSE stream, where the library alone
// would flush its buffer and then write the rest. Writes when not corked
// (control frames: the answer to a ping, a close) go straight through; mu
// keeps every write in order.
type conn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	buf    *[]byte // gathered while corked; from the shared pool
}

func (c *conn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		*c.buf = append(*c.buf, b...)
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// cork starts gathering writes.
func (c *conn) cork() {
	c.mu.Lock()
	c.corked = true
	if c.buf == nil {
		c.buf = hub.GetBuf()
	}
	c.mu.Unlock()
}

// uncork sends what was gathered in one write and stops gathering. The
// write deadline must be set.
func (c *conn) uncork() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	var n int
	var err error
	if b := *c.buf; len(b) > 0 {
		n, err = c.Conn.Write(b)
	}
	hub.PutBuf(c.buf)
	c.buf = nil
	return n, err
}

// deadline is the write deadline a sink last set, renewed only when less
// than half of the timeout is left (setting it is a runtime timer update,
// costly for every message of 10,000 connections): a write gets between
// 1/2 and all of the timeout. Interrupt and close only ever shorten the
// deadline or end the connection.
type deadline struct {
	at time.Time
}

func (d *deadline) renew(c net.Conn, timeout time.Duration) {
	now := time.Now()
	if d.at.Sub(now) < timeout/2 {
		d.at = now.Add(timeout)
		_ = c.SetWriteDeadline(d.at)
	}
}
