package api

import (
	"bufio"
	"bytes"
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"livedash/dashboard/apierr"
	"livedash/dashboard/httphead"
)

// Long polls on connections the API serves itself.
//
// One commit can release thousands of parked long polls at once, and each
// answer through net/http and Echo costs a background read started and
// stopped, a header map cloned, sorted and written, an Echo context and the
// middleware — together about as much as the write(2) itself. So when a
// long poll is about to park on an HTTP/1.1 connection, the API takes the
// connection over (Hijack) and serves that poll and the next ones on it
// itself: two goroutines per connection, as net/http has while a handler
// runs — a reader blocked in Read, which sees the client go away at once
// and reads the next request, and a server that parks, answers with one
// write of bytes mostly built once per commit (pollAnswer.wire), and waits
// for the next request.
//
// Only the plainest request is served this way: `GET /api/v1/frames?…
// HTTP/1.1` with a Host, no body, no Origin (CORS headers depend on it), no
// Expect, Upgrade or Connection other than keep-alive, and parameters that
// parse. Anything else — another path, a bad parameter, an over-long
// query, a malformed or over-large head — is handed back to the HTTP
// server with its bytes unread, so net/http and Echo answer it exactly as
// they would have (404, 400, 414, 431, …) and serve the connection from
// then on. The answers carry the headers the server's middleware sets on
// /api/ answers (ConnHooks.Headers) and are counted in its request metric.
//
// Timeouts, as net/http's: after an answer the next request must start
// within the server's idle timeout, and a head whose first byte arrived
// must be complete within its read-header timeout. (While a poll waits,
// the reader's deadline is max_wait + 1 s + the idle timeout, set when it
// hands the request over.) There is no write deadline, as net/http has none
// without a server-wide WriteTimeout: a client that does not read blocks
// only its own connection's goroutine, and Close cuts it a second after
// shutdown starts.

// ConnHooks let the API serve long polls on connections it takes over from
// the HTTP server. Set them (SetConnHooks) before serving; without them every
// request goes through the HTTP server.
type ConnHooks struct {
	// Handback gives the connection back to the HTTP server, which serves
	// it from its next unread byte.
	Handback func(conn net.Conn)
	// Requests returns the server's request counter of GET /api/v1/frames
	// with the given status.
	Requests func(code int) prometheus.Counter
	// Headers are the headers the server's middleware sets on /api/ answers.
	Headers http.Header
	// The server's limits (zero: net/http's defaults; for MaxQueryBytes,
	// none). A longer query is handed back for the server to refuse.
	MaxQueryBytes     int
	MaxHeaderBytes    int
	IdleTimeout       time.Duration
	ReadHeaderTimeout time.Duration
}

// connLoop is the API's state for connections it serves itself.
type connLoop struct {
	hooks    ConnHooks
	answered prometheus.Counter
	headers  []byte // hooks.Headers, serialised once
	bound    time.Duration

	mu    sync.Mutex
	conns map[*pollConn]struct{}
}

// SetConnHooks enables serving long polls on connections the API takes over
// (see ConnHooks). Call it once, before serving.
func (a *API) SetConnHooks(h ConnHooks) {
	if h.MaxQueryBytes <= 0 {
		h.MaxQueryBytes = math.MaxInt
	}
	if h.MaxHeaderBytes <= 0 {
		h.MaxHeaderBytes = http.DefaultMaxHeaderBytes
	}
	if h.IdleTimeout <= 0 {
		h.IdleTimeout = 60 * time.Second
	}
	if h.ReadHeaderTimeout <= 0 {
		h.ReadHeaderTimeout = h.IdleTimeout
	}
	l := &connLoop{hooks: h, bound: a.cfg.MaxWait.D() + maxJitter + h.IdleTimeout, conns: map[*pollConn]struct{}{}}
	if h.Requests != nil {
		l.answered = h.Requests(http.StatusOK)
	}
	var hb bytes.Buffer
	_ = h.Headers.Write(&hb)
	l.headers = hb.Bytes()
	a.loop.Store(l)
}

// adopt takes the connection of a long poll that is about to park over,
// when the request is plain enough (see above) and the hooks are set, and
// serves pl on it. false: the caller serves the request itself.
func (a *API) adopt(c echo.Context, pl *poll) bool {
	l := a.loop.Load()
	if l == nil {
		return false
	}
	r := c.Request()
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Method != http.MethodGet || r.ContentLength != 0 ||
		len(r.TransferEncoding) > 0 || r.Close || r.Header.Get(echo.HeaderOrigin) != "" ||
		r.Header.Get("Upgrade") != "" {
		return false
	}
	conn, brw, err := c.Response().Hijack()
	if err != nil {
		return false
	}
	// Bytes the server read ahead (a pipelined request) come first.
	pending, _ := brw.Reader.Peek(brw.Reader.Buffered())
	pc := &pollConn{a: a, l: l, conn: conn, reqs: make(chan connRequest), gone: make(chan struct{}),
		quit: make(chan struct{})}
	pc.br = bufio.NewReaderSize(&httphead.PrefixConn{Conn: conn, Prefix: bytes.Clone(pending)}, 4<<10)
	l.mu.Lock()
	l.conns[pc] = struct{}{}
	l.mu.Unlock()
	go pc.read()
	go pc.serve(*pl)
	return true
}

// closeConns closes every connection the API serves itself; their
// goroutines end. Close calls it a second after releasing the parked polls,
// for connections whose client does not read their last answer.
func (l *connLoop) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for pc := range l.conns {
		_ = pc.conn.Close()
	}
}

// pollConn is one connection the API serves itself.
type pollConn struct {
	a    *API
	l    *connLoop
	conn net.Conn
	br   *bufio.Reader    // owned by read
	reqs chan connRequest // read → serve, one request at a time
	gone chan struct{}    // closed by read when the connection fails or closes
	quit chan struct{}    // closed by serve when it stops
}

// connRequest is a request read by the reader: a poll, or the bytes to hand
// the connection back with.
type connRequest struct {
	pl       poll
	handback []byte
}

// serve answers pl, then each request the reader passes on, until the
// connection fails, the client goes away, the API closes, or a request is
// handed back.
func (pc *pollConn) serve(pl poll) {
	a, l := pc.a, pc.l
	defer func() {
		close(pc.quit)
		l.mu.Lock()
		delete(l.conns, pc)
		l.mu.Unlock()
	}()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	// The first request was counted by the server's middleware when the
	// handler that took the connection over returned.
	count := false
	for {
		if !pc.answer(&pl, timer, count) {
			_ = pc.conn.Close()
			return
		}
		// Idle from now: the next request must start within the idle
		// timeout (the reader's own deadline, set when it handed this
		// request over, allowed for the whole wait).
		_ = pc.conn.SetReadDeadline(time.Now().Add(l.hooks.IdleTimeout))
		select {
		case rq := <-pc.reqs:
			if rq.handback != nil {
				l.hooks.Handback(&httphead.PrefixConn{Conn: pc.conn, Prefix: rq.handback})
				return
			}
			pl, count = rq.pl, true
		case <-pc.gone:
			_ = pc.conn.Close()
			return
		case <-a.done:
			_ = pc.conn.Close()
			return
		}
	}
}

// answer answers pl, parking until a matching commit or the end of its
// wait. false: the connection is to be closed (the client went away, a
// write failed, the API closed, or the store failed).
func (pc *pollConn) answer(pl *poll, timer *time.Timer, count bool) bool {
	a := pc.a
	armed := false
	defer func() {
		if armed {
			timer.Stop()
		}
	}()
	for {
		changed, closed, gen := a.changed()
		an, done, err := a.read(pl, gen, closed)
		if err != nil {
			pc.writeError(err, count)
			return false
		}
		if done {
			return pc.write(an, closed, count) && !closed
		}
		if !armed {
			timer.Reset(pl.p.Wait + jitter(pl.p.Wait))
			armed = true
		}
		switch a.park(changed, timer.C, pc.gone) {
		case parkExpired:
			armed = false
			return pc.write(a.emptyAnswer(pl), false, count)
		case parkLeft:
			return false
		}
	}
}

// write sends an answer as one write: the shared response bytes of the
// polls that asked the same, or a response built here. closing adds
// Connection: close; count counts it in the server's request metric.
func (pc *pollConn) write(an answer, closing, count bool) bool {
	defer an.release()
	if count && pc.l.answered != nil {
		pc.l.answered.Inc() // before the client can see the answer, as Echo's middleware counts
	}
	now := time.Now()
	var err error
	if an.shared != nil && !closing {
		_, err = pc.conn.Write(an.shared.response(pc.l, now))
	} else {
		bp := getBuf()
		*bp = pc.l.appendResponse(*bp, an.body(), closing, now)
		_, err = pc.conn.Write(*bp)
		putBuf(bp)
	}
	return err == nil
}

// writeError answers a failed store read as the HTTP server's error handler
// would, and asks the client to reconnect.
func (pc *pollConn) writeError(err error, count bool) {
	var ae *apierr.Error
	if !errors.As(err, &ae) {
		ae = storeUnavailable(err)
	}
	pc.a.log.Warn("request error", "route", "/api/v1/frames", "code", ae.Code, "err", ae.Err)
	body := appendErrorBody(nil, ae)
	b := fmtStatusLine(nil, ae.Status)
	b = append(b, "Content-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nConnection: close\r\n"...)
	b = append(b, pc.l.headers...)
	b = append(b, "\r\n"...)
	if count && pc.l.hooks.Requests != nil {
		pc.l.hooks.Requests(ae.Status).Inc()
	}
	_, _ = pc.conn.Write(append(b, body...))
}

func fmtStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	return append(b, "\r\n"...)
}

// appendErrorBody appends {"error":{"code","message"}}.
func appendErrorBody(b []byte, ae *apierr.Error) []byte {
	b = append(b, `{"error":{"code":`...)
	b = appendString(b, ae.Code)
	b = append(b, `,"message":`...)
	b = appendString(b, ae.Message)
	return append(b, "}}\n"...)
}

// appendResponse appends a 200 response with a JSON body and the headers
// the HTTP server would send for it.
func (l *connLoop) appendResponse(b, body []byte, closing bool, now time.Time) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, jsonType[0]...)
	b = append(b, "\r\nDate: "...)
	b = append(b, httpDate(now)[0]...)
	b = append(b, "\r\n"...)
	if closing {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, l.headers...)
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// wireAnswer is a shared answer's whole response in one second (its Date).
type wireAnswer struct {
	sec int64
	l   *connLoop
	b   []byte
}

// response returns the shared answer's response bytes for now, built by the
// first poll to need them in each second.
func (pa *pollAnswer) response(l *connLoop, now time.Time) []byte {
	sec := now.Unix()
	if w := pa.wire.Load(); w != nil && w.sec == sec && w.l == l {
		return w.b
	}
	w := &wireAnswer{sec: sec, l: l, b: l.appendResponse(nil, pa.body, false, now)}
	pa.wire.Store(w)
	return w.b
}

// read reads request heads and passes them to serve until the connection
// fails or closes, or a request is handed back.
func (pc *pollConn) read() {
	defer close(pc.gone)
	l := pc.l
	var head []byte
	for {
		_ = pc.conn.SetReadDeadline(time.Now().Add(l.bound))
		var err error
		head, err = httphead.Read(pc.br, head[:0], l.hooks.MaxHeaderBytes, func() {
			_ = pc.conn.SetReadDeadline(time.Now().Add(l.hooks.ReadHeaderTimeout))
		})
		var rq connRequest
		switch {
		case errors.Is(err, httphead.ErrTooLarge):
			rq.handback = pc.unread(head) // net/http answers 431
		case err != nil:
			return // gone, timed out, or a head cut short: close, as net/http does
		default:
			served := false
			if query, _, ok := httphead.PlainGet(head, framesPath, l.hooks.MaxQueryBytes, ""); ok {
				var aerr *apierr.Error
				rq.pl, aerr = pc.a.newPoll(query)
				served = aerr == nil // a bad parameter: Echo answers it
			}
			if !served {
				rq.handback = pc.unread(head)
			}
		}
		select {
		case pc.reqs <- rq:
		case <-pc.quit:
			return
		}
		if rq.handback != nil {
			return
		}
	}
}

// unread returns head followed by what the reader holds beyond it: the
// bytes the HTTP server must read first when the connection is handed back.
func (pc *pollConn) unread(head []byte) []byte {
	rest, _ := pc.br.Peek(pc.br.Buffered())
	b := make([]byte, 0, len(head)+len(rest))
	return append(append(b, head...), rest...)
}

const framesPath = "/api/v1/frames"
