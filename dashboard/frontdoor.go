package dashboard

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"livedash/dashboard/httphead"
)

// connStreamer is a Streamer that can serve a stream on a connection whose
// request head the server has read (hub.Hub.ConnServer).
type connStreamer interface {
	ConnServer(extra http.Header, requests prometheus.Counter) func(conn net.Conn, query, lastEventID string)
}

// frontDoor accepts the server's connections and reads the first request
// head of each itself. A plain `GET /api/v1/stream` over HTTP/1.1 (see
// httphead.PlainGet: no Origin, no Upgrade, nothing pipelined behind it,
// a query within the server's limit) goes straight to the hub, which
// answers exactly as its Echo handler would — same head, same headers,
// counted in the same request metric. Everything else goes to net/http
// through the hand-back listener with the bytes read so far in front, so
// net/http and Echo answer it as if they had read it (431, 414, 404, the
// page, long polls, push, …) and serve the connection from then on.
//
// Why: in a reconnect storm net/http's work per connection before a
// stream takes it over — the request parsed into maps, buffers, a
// background reader, the hijack — was a sixth of the server's CPU, and
// the storm is CPU-bound. Reading the head here costs one read into pooled
// buffers, which go back to their pools before the stream starts.
//
// Timeouts: the head must arrive within the read-header timeout from
// accept, else the connection is closed without an answer (FAULTS row 8),
// as net/http does; a connection handed to net/http keeps that deadline
// (cappedConn), so a head trickled in does not get the timeout twice. A
// head over the header limit is handed to net/http, which answers 431
// (row 6). Accept errors other than a closed listener (EMFILE, …) are
// logged and retried after 5 ms doubling to 1 s, net/http's backoff for
// temporary errors; the server does not stop over them.
//
// Shutdown closes the connections whose head is still being read. net/http
// gives a new connection up to 5 s to send its first request before its
// Shutdown counts it as idle; the front door does not wait, because by
// then readiness is off and the hand-back listener is closing: the
// request would not be served anyway, and its client retries.
type frontDoor struct {
	ln            net.Listener
	hb            *handbackListener
	stream        func(conn net.Conn, query, lastEventID string)
	log           *slog.Logger
	maxHeader     int
	maxQuery      int
	headerTimeout time.Duration

	taken atomic.Int64 // streams served from here, for tests

	mu       sync.Mutex
	sniffing map[net.Conn]struct{} // connections whose head is being read
	closed   bool
	wg       sync.WaitGroup // every connection's goroutine, its stream included
}

const streamPath = "/api/v1/stream"

// serve accepts connections until the listener is closed: nil when close
// closed it, else the accept error.
func (fd *frontDoor) serve() error {
	var delay time.Duration
	for {
		conn, err := fd.ln.Accept()
		if err != nil {
			if fd.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			fd.log.Warn("accept failed; retrying", "err", err, "in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if !fd.track(conn) {
			_ = conn.Close()
			return nil
		}
		go func() {
			defer fd.wg.Done()
			fd.sniff(conn)
		}()
	}
}

func (fd *frontDoor) isClosed() bool {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	return fd.closed
}

func (fd *frontDoor) track(conn net.Conn) bool {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	if fd.closed {
		return false
	}
	fd.sniffing[conn] = struct{}{}
	fd.wg.Add(1) // under mu: wait, after close, sees every Add
	return true
}

// untrack reports false when the front door has closed (conn is closed).
func (fd *frontDoor) untrack(conn net.Conn) bool {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	delete(fd.sniffing, conn)
	return !fd.closed
}

// close stops accepting and closes the connections whose head is still
// being read (see frontDoor). It does not wait; wait does.
func (fd *frontDoor) close() {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	fd.closed = true
	_ = fd.ln.Close()
	for c := range fd.sniffing {
		_ = c.Close()
	}
	clear(fd.sniffing)
}

// wait waits for every connection's goroutine: those reading heads end at
// close, those serving streams when the hub's Shutdown has ended them.
func (fd *frontDoor) wait() { fd.wg.Wait() }

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// sniff reads conn's first request head and serves a stream on it or hands
// it to net/http.
func (fd *frontDoor) sniff(conn net.Conn) {
	accepted := time.Now()
	if fd.headerTimeout > 0 {
		_ = conn.SetReadDeadline(accepted.Add(fd.headerTimeout))
	}
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(conn)
	bp := getHeadBuf()
	head, err := httphead.Read(br, (*bp)[:0], fd.maxHeader, func() {})
	var query, lastID string
	var stream bool
	var prefix []byte
	switch {
	case err == nil:
		if br.Buffered() == 0 {
			query, lastID, stream = httphead.PlainGet(head, streamPath, fd.maxQuery, "Last-Event-ID")
		}
	case errors.Is(err, httphead.ErrTooLarge):
		// net/http answers 431, or serves a head a little over the limit.
	case errors.Is(err, io.EOF) && len(head)+br.Buffered() > 0:
		// Cut short by the client: net/http answers 400.
	default:
		// Timed out, or gone without a byte, or reset: net/http closes
		// such a connection without an answer, and so does this.
		err = errClose
	}
	if !stream && err != errClose {
		rest, _ := br.Peek(br.Buffered())
		prefix = make([]byte, 0, len(head)+len(rest))
		prefix = append(append(prefix, head...), rest...)
	}
	// Nothing read is kept: an idle stream holds no buffer of the front
	// door's, as one hijacked from net/http holds none of net/http's.
	*bp = head[:0]
	putHeadBuf(bp)
	br.Reset(nil)
	readerPool.Put(br)

	if !fd.untrack(conn) {
		return // closed by close
	}
	switch {
	case err == errClose:
		_ = conn.Close()
	case stream:
		_ = conn.SetReadDeadline(time.Time{})
		fd.taken.Add(1)
		fd.stream(conn, query, lastID)
	default:
		// net/http starts its read-header timeout when it starts reading;
		// capped, it runs from accept, so a head trickled in here does
		// not get the timeout twice (FAULTS row 8).
		_ = conn.SetReadDeadline(time.Time{})
		var limit time.Time
		if fd.headerTimeout > 0 {
			limit = accepted.Add(fd.headerTimeout)
		}
		fd.hb.put(&cappedConn{PrefixConn: httphead.PrefixConn{Conn: conn, Prefix: prefix}, limit: limit})
	}
}

var errClose = errors.New("close")

// cappedConn is a connection handed to net/http: the first read deadline
// net/http sets — the read-header deadline of the first request — is
// capped at limit (zero: not capped).
type cappedConn struct {
	httphead.PrefixConn
	limit time.Time
	set   atomic.Bool
}

func (c *cappedConn) SetReadDeadline(t time.Time) error {
	if !c.limit.IsZero() && c.set.CompareAndSwap(false, true) && (t.IsZero() || t.After(c.limit)) {
		t = c.limit
	}
	return c.PrefixConn.SetReadDeadline(t)
}

func (c *cappedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.PrefixConn.SetWriteDeadline(t)
}

var headBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<10); return &b }}

func getHeadBuf() *[]byte { return headBufPool.Get().(*[]byte) }

func putHeadBuf(b *[]byte) {
	if cap(*b) > 64<<10 {
		return
	}
	headBufPool.Put(b)
}
