// Package ws is the WebSocket transport of the hub: GET /api/v1/ws. It is
// one more writer on the hub's transport-neutral subscriber, beside SSE: the
// same cursor, replay, bounded queue, lag cut, heartbeat timing, limits and
// shutdown kick, the same IDs and the same guarantees. It exists for clients
// behind proxies that buffer text/event-stream but pass WebSocket, and for
// clients that change what they watch without reconnecting.
//
// # Contract
//
// Query: topics=a,b (comma-separated, repeated parameters merged, none =
// every topic; topics that are not known are named in the hello's
// "unknown_topics" and match nothing until they appear) and
// lastEventId=<id> (the Last-Event-ID header, when a client can set one,
// wins). Browsers' Origin must be the page's own (the Host the request
// names) or one of Options.AllowedOrigins; a request without Origin (not a
// browser) is accepted. A refused origin gets 403, a request that is
// not a WebSocket handshake 426, both with the JSON error body.
//
// Server → client: text messages; a message holds one or more events, one
// JSON object each, separated by "\n" (see encode.go): hello, then reset
// when the cursor cannot be honoured, the replayed frames, then live frames
// and, while idle, hb heartbeats. The frames of one tick travel in one
// message, written with one write.
//
// Client → server: {"op":"subscribe","topics":[…],"after":"<id>"} replaces
// the subscription on the same connection: hello (naming the new topics
// that are not known, as the first hello does) and maybe reset, the replay
// after "after" — or, without "after", from where the connection is — then
// live frames of the new topics. Every other message is refused with a close:
// 1003 for a binary message, 1008 for one over Options.ReadLimit, malformed
// JSON, unknown fields or an unknown op. Nothing a client sends can panic
// the server or reach another connection.
//
// Close codes the server sends, each with a reason:
//
//	1000  max lifetime reached: reconnect with the last ID
//	1003  the client sent a binary message
//	1008  a refused client message; or too slow a consumer (more than
//	      stream.queue_size frames behind, or a write not done within
//	      stream.write_timeout): reconnect with the last ID, nothing is lost
//	1011  server error (a store read failed, an internal fault)
//	1013  over the stream limits (global or per address, shared with SSE) or
//	      shutting down: try again later; the reason ends with
//	      "retry_ms=<n>", the jittered delay the server suggests
//
// # Connections
//
// Each connection has two goroutines, as an SSE stream has: one runs the
// hub subscriber and writes, one reads. The reader is the only reader and
// never bounds a read with a timer (with github.com/coder/websocket any
// expired context closes the whole connection); it answers pings and the
// client's close, and hands subscribe messages to the subscriber. Each
// message — a tick, a replay chunk, a heartbeat — is one write(2) under the
// stream write timeout, as on an SSE stream: a client that does not take it
// in time is cut (see sink.send). The handshake's connection is taken over
// (hijacked), so the handler returns at once and net/http keeps no
// per-connection state.
package ws

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"livedash/dashboard/apierr"
	"livedash/dashboard/clientip"
	"livedash/dashboard/hub"
)

// Options are the transport's collaborators and settings. All fields are
// optional.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics are kept but not registered
	// AllowedOrigins are the origins ("https://grafana.example.com",
	// scheme://host[:port]) allowed to open a socket besides the page's
	// own: the server's CORS origins. Compared exactly, case-insensitively;
	// "*" is ignored — a browser sends its cookies and credentials with a
	// WebSocket handshake whatever the page's origin, so a wildcard would
	// let any site read the dashboard with a user's credentials.
	AllowedOrigins []string
	// Compression negotiates permessage-deflate with clients that offer it
	// (without context takeover: a compressor per message, from a pool —
	// with takeover every connection would hold a 1.2 MB compressor). Off
	// by default: every subscriber compresses the same tick again, which
	// costs CPU per connection (see the README's figures).
	Compression bool
	// ReadLimit bounds one client message, in bytes; default 16 KiB.
	ReadLimit int
	// Known reports whether a topic is known (configured or ever seen).
	// Every hello — the first, for topics=, and the one answering each
	// subscribe — whose topics name others lists them in "unknown_topics";
	// the subscription goes on all the same (a first push makes a topic
	// known). nil: every topic is known.
	Known func(topic string) bool
}

// DefaultReadLimit is the default bound of one client message.
const DefaultReadLimit = 16 << 10

// Transport serves WebSocket connections on a hub.
type Transport struct {
	h            *hub.Hub
	enc          *hub.Encoding
	writeTimeout time.Duration
	closeWait    time.Duration
	readLimit    int
	log          *slog.Logger
	m            *metrics
	origins      map[string]struct{}
	accept       *websocket.AcceptOptions
	known        func(string) bool
}

// New returns the WebSocket transport of h. Create it before serving: it
// registers its frame encoding with the hub.
func New(h *hub.Hub, opts Options) *Transport {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReadLimit <= 0 {
		opts.ReadLimit = DefaultReadLimit
	}
	t := &Transport{
		h:            h,
		enc:          h.NewEncoding(appendFrameEvent),
		writeTimeout: h.Config().WriteTimeout.D(),
		readLimit:    opts.ReadLimit,
		log:          opts.Logger,
		m:            newMetrics(opts.Registerer),
		origins:      map[string]struct{}{},
		// The origin is checked before Accept (see originAllowed).
		accept: &websocket.AcceptOptions{InsecureSkipVerify: true},
		known:  opts.Known,
	}
	// The close handshake of a connection the server ends is bounded like
	// the final retry: hint of an SSE stream: the client may be gone.
	t.closeWait = min(t.writeTimeout, time.Second)
	if opts.Compression {
		t.accept.CompressionMode = websocket.CompressionNoContextTakeover
	}
	for _, o := range opts.AllowedOrigins {
		o = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(o), "/"))
		if o != "" && o != "*" && o != "null" {
			t.origins[o] = struct{}{}
		}
	}
	return t
}

// Serve is the Echo handler of GET /api/v1/ws.
func (t *Transport) Serve(c echo.Context) error { return t.serve(c.Response(), c.Request()) }

// ServeHTTP is Serve for a plain net/http mux; errors are answered as JSON.
func (t *Transport) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := t.serve(w, r); err != nil {
		var ae *apierr.Error
		if !errors.As(err, &ae) {
			ae = apierr.New(http.StatusInternalServerError, "internal_error", "internal error")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(ae.Status)
		_, _ = w.Write([]byte(`{"error":{"code":` + strconv.Quote(ae.Code) + `,"message":` + strconv.Quote(ae.Message) + `}}`))
	}
}

func (t *Transport) serve(w http.ResponseWriter, r *http.Request) error {
	if !isUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		return apierr.New(http.StatusUpgradeRequired, "upgrade_required",
			"GET /api/v1/ws is a WebSocket endpoint; the stream without WebSocket is /api/v1/stream")
	}
	if !t.originAllowed(r) {
		return apierr.New(http.StatusForbidden, "forbidden_origin",
			"the page's origin may not open a WebSocket here; allow it in http.cors_origins")
	}
	q := r.URL.Query()
	req := hub.Request{Topics: hub.ParseTopics(q["topics"]), Cursor: r.Header.Get("Last-Event-ID")}
	if req.Cursor == "" {
		req.Cursor = q.Get("lastEventId")
	}

	hw := &hijackCapture{ResponseWriter: w}
	c, err := websocket.Accept(hw, r, t.accept)
	if err != nil {
		// Accept answered (400 and the reason for a broken handshake).
		t.log.Debug("websocket handshake refused", "err", err)
		return nil
	}
	t.m.connections.Inc()
	// The limits are the hub's, shared with SSE. A client turned away gets
	// the upgrade and then 1013 with the retry hint: a browser cannot read
	// the status of a refused handshake.
	sub, reason := t.h.Subscribe(clientip.Of(r))
	if sub == nil {
		msg := "over capacity (" + reason + ")"
		if reason == hub.RejectShutdown {
			msg = "shutting down"
		}
		go t.reject(c, hw.conn, msg+"; "+retryHint(t.h.RetryLater(reason)))
		return nil
	}
	deflate := strings.Contains(w.Header().Get("Sec-WebSocket-Extensions"), "permessage-deflate")
	go t.run(c, hw.conn, sub, req, deflate)
	return nil
}

// retryHint is the end of a 1013 reason: the delay the server suggests.
func retryHint(d time.Duration) string {
	return "retry_ms=" + strconv.FormatInt(d.Milliseconds(), 10)
}

// reject closes an admitted handshake that the hub turned away.
func (t *Transport) reject(c *websocket.Conn, nc *conn, reason string) {
	defer t.m.connections.Dec()
	defer func() {
		if v := recover(); v != nil {
			t.h.Recovered("ws", v)
		}
	}()
	t.close(c, nc, websocket.StatusTryAgainLater, reason)
	t.m.closed(sideServer, websocket.StatusTryAgainLater)
}

// isUpgrade tells a WebSocket handshake from a plain GET.
func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// originAllowed: no Origin (not a browser), the page's own origin (its host
// is the Host the request names), or an allowed origin. A browser sends the
// user's cookies and credentials with a WebSocket handshake to any site, and
// WebSocket has no CORS: without this check any page could read the
// dashboard with them.
func (t *Transport) originAllowed(r *http.Request) bool {
	vals := r.Header.Values("Origin")
	if len(vals) == 0 {
		return true
	}
	if len(vals) > 1 {
		return false
	}
	u, err := url.Parse(vals[0])
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false // "null" (sandboxed, file:), garbage
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	_, ok := t.origins[strings.ToLower(u.Scheme+"://"+u.Host)]
	return ok
}

// closeMsg is a close the server owes a client.
type closeMsg struct {
	code   websocket.StatusCode
	reason string
}

// run serves one admitted connection until it ends, closes it with the
// code and reason that say why, and unregisters the subscriber.
func (t *Transport) run(c *websocket.Conn, nc *conn, sub *hub.Subscriber, req hub.Request, deflate bool) {
	s := &sink{c: c, nc: nc, timeout: t.writeTimeout, deflate: deflate, m: t.m, sub: sub, known: t.known}
	gone := make(chan struct{})
	readerDone := make(chan struct{})
	go t.read(c, sub, s, gone, readerDone)

	// The connection is closed before the subscriber is unregistered: when
	// hub.Shutdown returns, every connection it waited for is closed.
	defer t.m.connections.Dec()
	defer sub.Close()
	defer func() { <-readerDone }()

	cm := closeMsg{websocket.StatusInternalError, "internal error"}
	func() {
		defer func() {
			if v := recover(); v != nil {
				t.h.Recovered("ws", v)
			}
		}()
		cm = t.closeFor(sub.Run(req, t.enc, s, gone), s)
	}()
	if cm.code == 0 {
		// The client closed or went away: nothing more to say.
		_ = c.CloseNow()
		<-readerDone
		code := websocket.StatusCode(s.clientCode.Load())
		if code <= 0 {
			code = websocket.StatusAbnormalClosure
		}
		t.m.closed(sideClient, code)
		return
	}
	t.close(c, nc, cm.code, cm.reason)
	t.m.closed(sideServer, cm.code)
}

// closeFor is the close owed for a subscriber that ended with reason (a
// hub Disconnect reason); code 0: none (the client ended it).
func (t *Transport) closeFor(reason string, s *sink) closeMsg {
	switch reason {
	case hub.DisconnectClient:
		if bad := s.bad.Load(); bad != nil {
			return *bad
		}
		return closeMsg{}
	case hub.DisconnectSlow:
		return closeMsg{websocket.StatusPolicyViolation, "too slow: fell more than stream.queue_size frames behind; resume with the last ID"}
	case hub.DisconnectWriteDeadline:
		return closeMsg{websocket.StatusPolicyViolation, "too slow: a write did not complete within stream.write_timeout; resume with the last ID"}
	case hub.DisconnectShutdown:
		return closeMsg{websocket.StatusTryAgainLater, "shutting down; " + retryHint(t.h.RetryLater(hub.RejectShutdown))}
	case hub.DisconnectLifetime:
		return closeMsg{websocket.StatusNormalClosure, "max lifetime reached; resume with the last ID"}
	case hub.DisconnectResync:
		return closeMsg{websocket.StatusInternalError, "resynchronising; resume with the last ID"}
	default: // store_error
		return closeMsg{websocket.StatusInternalError, "internal error; resume with the last ID"}
	}
}

// close sends the close frame and waits for the client's, at most
// closeWait: a client that does not answer (or stopped reading) is cut.
// The library's own bounds are longer, and one of its waits (the rest of a
// refused message's payload) has none.
func (t *Transport) close(c *websocket.Conn, nc *conn, code websocket.StatusCode, reason string) {
	_ = nc.SetWriteDeadline(time.Now().Add(t.closeWait))
	cut := time.AfterFunc(t.closeWait, func() { _ = nc.Close() })
	_ = c.Close(code, reason)
	cut.Stop()
	_ = nc.Close()
}

// read is the connection's one reader: it answers control frames (in the
// library), hands subscribe messages to the subscriber and refuses anything
// else. It closes gone when it stops, so the subscriber ends at once.
func (t *Transport) read(c *websocket.Conn, sub *hub.Subscriber, s *sink, gone, done chan<- struct{}) {
	defer close(done)
	defer close(gone)
	defer func() {
		if v := recover(); v != nil {
			t.h.Recovered("ws", v)
			s.refuse(websocket.StatusInternalError, "internal error")
		}
	}()
	// A message over the limit is refused by us, with 1008, before the
	// library's own limit (1009) could fire.
	c.SetReadLimit(int64(t.readLimit) + 1)
	for {
		// No deadline: an expired context would close the connection.
		typ, r, err := c.Reader(context.Background())
		if err != nil {
			if code := websocket.CloseStatus(err); code > 0 {
				s.clientCode.Store(int32(code))
			}
			return
		}
		t.m.received.Inc()
		if typ != websocket.MessageText {
			s.refuse(websocket.StatusUnsupportedData, "binary messages are not accepted; send JSON text")
			return
		}
		b, err := io.ReadAll(io.LimitReader(r, int64(t.readLimit)+1))
		if err != nil {
			return
		}
		if len(b) > t.readLimit {
			s.refuse(websocket.StatusPolicyViolation, "message over "+strconv.Itoa(t.readLimit)+" bytes")
			return
		}
		req, err := parseClientMessage(b)
		if err != nil {
			s.refuse(websocket.StatusPolicyViolation, err.Error())
			return
		}
		sub.Change(req)
	}
}
