// Package sse is the Server-Sent Events transport of the hub:
// GET /api/v1/stream. It turns what a hub subscriber yields into SSE bytes on
// one connection; the hub does everything else (cursor, replay, queue, cut,
// heartbeat timing, shutdown).
//
// The answer is always 200 with an event stream — a client mistake (bad
// Last-Event-ID, unknown topics) gets a reset event or simply no frames, and
// "come back later" (over a limit, shutting down) gets a retry: hint and a
// clean end — because a browser's EventSource gives up for good on any other
// status.
//
// The route must not be wrapped by gzip, body-dump or timeout middleware
// (they buffer, cannot flush, or end the stream), and the server must have no
// WriteTimeout: every write here sets its own deadline.
package sse

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"livedash/dashboard/clientip"
	"livedash/dashboard/hub"
)

// Options are the transport's collaborators. All fields are optional.
type Options struct {
	Logger *slog.Logger
	// Known reports whether a topic is known (configured or ever seen).
	// The hello of a stream whose topics= names others lists them in
	// "unknown_topics"; the stream goes on all the same (a first push
	// makes a topic known), as the answer must stay a 200 stream. nil:
	// every topic is known.
	Known func(topic string) bool
}

// Transport serves streams on a hub. Its embedded Hub gives Shutdown and
// Streams to the server.
type Transport struct {
	*hub.Hub
	enc          *hub.Encoding
	writeTimeout time.Duration
	log          *slog.Logger
	known        func(string) bool
}

// New returns the SSE transport of h. Create it before serving: it
// registers its frame encoding with the hub.
func New(h *hub.Hub, opts Options) *Transport {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Transport{Hub: h, enc: h.NewEncoding(appendEvent), writeTimeout: h.Config().WriteTimeout.D(), log: opts.Logger, known: opts.Known}
}

// ServeStream is the Echo handler of GET /api/v1/stream.
//
// Query: topics=a,b (comma-separated, repeated parameters merged, empty
// items ignored, none = every topic; topics that are not known are named
// in the hello's "unknown_topics" and match nothing until they appear),
// lastEventId=<id> (used when there is no Last-Event-ID header; the header
// wins).
func (t *Transport) ServeStream(c echo.Context) error {
	t.serve(c.Response(), c.Request())
	return nil
}

// ServeHTTP is ServeStream for a plain net/http mux.
func (t *Transport) ServeHTTP(w http.ResponseWriter, r *http.Request) { t.serve(w, r) }

// setStreamHeaders sets the headers of every stream response: proxies must
// neither buffer nor compress it.
func setStreamHeaders(hdr http.Header) {
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	hdr.Del("Content-Length")
	hdr.Del("Content-Encoding")
}

func (t *Transport) serve(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	setStreamHeaders(hdr)
	if r.ProtoMajor == 1 {
		// HTTP/1.x: no chunked encoding; the body ends when the connection
		// closes (the setup the SSE specification recommends). Chunking
		// would put a chunk header in front of every write, and a tick
		// larger than net/http's buffer would cost more than one write(2);
		// unchunked, a coalesced write of any size is one write(2) straight
		// from our buffer. HTTP/2 never sees this header.
		hdr.Set("Transfer-Encoding", "identity")
	}
	q := r.URL.Query()
	req := hub.Request{Topics: hub.ParseTopics(q["topics"]), Cursor: r.Header.Get("Last-Event-ID")}
	if req.Cursor == "" {
		req.Cursor = q.Get("lastEventId")
	}

	sub, reason := t.Subscribe(clientip.Of(r))
	// Headers are written here, not by go-sse's Upgrade, so that Echo's
	// Response sees WriteHeader (else it logs "superfluous WriteHeader")
	// and the middleware that runs after the handler sees the status.
	w.WriteHeader(http.StatusOK)
	st := &stream{timeout: t.writeTimeout, w: w, rc: http.NewResponseController(w)}
	if sub == nil {
		st.flush = flusherOf(w)
		defer st.finish()
		msg := "over capacity"
		if reason == hub.RejectShutdown {
			msg = "shutting down"
		}
		_, _ = st.writeRaw(appendComment(appendRetry(nil, t.RetryLater(reason)), msg))
		return
	}
	st.retry = sub.Retry
	st.unknown = hub.UnknownTopics(req.Topics, t.known)

	if r.ProtoMajor == 1 && r.Method != http.MethodHead {
		// Take the connection over once its head is out (Hijack flushes
		// it): the handler returns, and with it net/http's per-connection
		// state — buffers, the request, its background reader — so an idle
		// stream costs little more than its goroutine. The stream lives on
		// in a goroutine of its own, registered with the hub until it ends
		// (hub.Shutdown waits for that: http.Server.Shutdown does not see
		// hijacked connections).
		if conn, brw, err := st.rc.Hijack(); err == nil {
			// Nothing is buffered; were anything left, it must go out
			// before the events. A failed flush means the client is gone:
			// the first write fails too.
			_ = brw.Writer.Flush()
			st.conn = conn
			gone := make(chan struct{})
			go readUntilGone(conn, gone)
			go func() {
				// The connection closes before the subscriber is
				// unregistered: when hub.Shutdown returns, every
				// connection it waited for is closed.
				defer sub.Close()
				defer conn.Close()
				defer func() {
					if v := recover(); v != nil {
						t.Recovered("sse", v)
					}
				}()
				t.run(st, sub, req, gone)
			}()
			return
		}
	}
	// HTTP/2 (or a writer that cannot be hijacked): the stream runs in the
	// handler's goroutine; a panic goes to the server's recover middleware.
	st.flush = flusherOf(w)
	defer sub.Close()
	defer st.finish()
	t.run(st, sub, req, r.Context().Done())
}

// run serves sub on st, and sends the final retry: hint when the server ends
// the stream (shutdown, lifetime) so the client comes back at its own pace.
func (t *Transport) run(st *stream, sub *hub.Subscriber, req hub.Request, gone <-chan struct{}) {
	switch sub.Run(req, t.enc, st, gone) {
	case hub.DisconnectShutdown, hub.DisconnectLifetime:
		st.bye()
	}
}

// readUntilGone reads and discards whatever the client sends on a hijacked
// connection until it fails or closes, then closes gone: the stream notices
// a client that went away at once, not at its next write.
func readUntilGone(conn net.Conn, gone chan<- struct{}) {
	defer close(gone)
	var b [64]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			return
		}
	}
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
