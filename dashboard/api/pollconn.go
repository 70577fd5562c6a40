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
	pc.br = bufio.NewReaderSize(&prefixConn{Conn: conn, prefix: bytes.Clone(pending)}, 4<<10)
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
				l.hooks.Handback(&prefixConn{Conn: pc.conn, prefix: rq.handback})
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
		head, err = readHead(pc.br, head[:0], l.hooks.MaxHeaderBytes, func() {
			_ = pc.conn.SetReadDeadline(time.Now().Add(l.hooks.ReadHeaderTimeout))
		})
		var rq connRequest
		switch {
		case errors.Is(err, errHeadTooLarge):
			rq.handback = pc.unread(head) // net/http answers 431
		case err != nil:
			return // gone, timed out, or a head cut short: close, as net/http does
		default:
			served := false
			if query, ok := parseFastHead(head, l.hooks.MaxQueryBytes); ok {
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

var errHeadTooLarge = errors.New("request head over the limit")

// readHead appends one request head (request line, header lines, the empty
// line) from br to b. started is called when the head's first byte has
// arrived but not the whole head, to bound the time the rest may take (the
// read-header timeout). Over max bytes it stops with errHeadTooLarge and
// what it read so far.
func readHead(br *bufio.Reader, b []byte, max int, started func()) ([]byte, error) {
	if _, err := br.Peek(1); err != nil {
		return b, err
	}
	if rest, _ := br.Peek(br.Buffered()); !bytes.Contains(rest, []byte("\r\n\r\n")) {
		started() // the usual head arrives whole: no deadline to change
	}
	lineStart := 0
	for {
		line, err := br.ReadSlice('\n')
		if len(b)+len(line) > max {
			return append(b, line...), errHeadTooLarge
		}
		b = append(b, line...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // the line goes on
		}
		if err != nil {
			return b, err
		}
		l := b[lineStart:]
		if len(l) == 2 && l[0] == '\r' || len(l) == 1 {
			return b, nil
		}
		lineStart = len(b)
	}
}

// prefixConn reads prefix before the connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

const framesPath = "/api/v1/frames"

// parseFastHead reports whether head is a request the API serves on its own
// connections — GET /api/v1/frames over HTTP/1.1 with one valid Host, no
// body, and no header that changes how net/http would answer (Origin,
// Expect, Upgrade, Connection other than keep-alive, Transfer-Encoding, a
// Content-Length other than 0) — and returns its raw query. Anything it is
// not sure of is refused: refused requests go to net/http, which is always
// right. FuzzParseFastHead checks that net/http reads every accepted head
// the same way.
func parseFastHead(head []byte, maxQuery int) (query string, ok bool) {
	i := bytes.IndexByte(head, '\n')
	if i < 1 || head[i-1] != '\r' {
		return "", false
	}
	line, rest := head[:i-1], head[i+1:]
	const prefix, suffix = "GET " + framesPath, " HTTP/1.1"
	if !bytes.HasPrefix(line, []byte(prefix)) || !bytes.HasSuffix(line, []byte(suffix)) ||
		len(line) < len(prefix)+len(suffix) {
		return "", false
	}
	target := line[len(prefix) : len(line)-len(suffix)]
	if len(target) > 0 {
		if target[0] != '?' {
			return "", false
		}
		target = target[1:]
		if len(target) > maxQuery {
			return "", false // the server answers 414
		}
		for _, c := range target {
			if c <= ' ' || c >= 0x7f || c == '#' {
				return "", false
			}
		}
	}
	hosts := 0
	for {
		j := bytes.IndexByte(rest, '\n')
		if j < 1 || rest[j-1] != '\r' {
			return "", false
		}
		h := rest[:j-1]
		rest = rest[j+1:]
		if len(h) == 0 {
			if len(rest) != 0 || hosts != 1 {
				return "", false
			}
			return string(target), true
		}
		colon := bytes.IndexByte(h, ':')
		if colon < 1 {
			return "", false
		}
		name, value := h[:colon], bytes.Trim(h[colon+1:], " \t")
		for _, c := range name {
			if !isTokenChar(c) {
				return "", false
			}
		}
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return "", false
			}
		}
		switch {
		case equalFold(name, "Host"):
			hosts++
			if len(value) == 0 {
				return "", false
			}
			for _, c := range value {
				if !isHostChar(c) {
					return "", false
				}
			}
		case equalFold(name, "Content-Length"):
			if string(value) != "0" {
				return "", false
			}
		case equalFold(name, "Connection"):
			if !equalFold(value, "keep-alive") {
				return "", false
			}
		case equalFold(name, "Transfer-Encoding"), equalFold(name, "Expect"), equalFold(name, "Upgrade"),
			equalFold(name, "Origin"), equalFold(name, "Trailer"):
			return "", false
		}
	}
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

func isHostChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_'
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
