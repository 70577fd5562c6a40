// Package dashboard serves livedash over HTTP: the route table, the
// middleware chain, the error handler, server-wide limits, health and status
// endpoints, /metrics and the embedded page. The store (dashboard/store), the
// SSE hub (dashboard/hub), the JSON API (dashboard/api) and push ingest
// (dashboard/push) are wired in by cmd/livedash through Deps.
//
// Every request takes one path: net/http parses it (HTTP/1.1, or HTTP/2
// with TLS or, when enabled, h2c) and Echo routes it through one middleware
// chain — request metrics, panic recovery, the Host check, the client
// address, security headers, CORS, the per-client API rate, login, the
// query limit, then Deps.Middleware — to its handler. No part reads requests from a
// connection itself, so whatever the chain enforces holds for every route:
// the page, the stream, long polls, push and /metrics alike.
package dashboard

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"livedash/config"
	"livedash/dashboard/apierr"
	"livedash/dashboard/clientip"
	"livedash/dashboard/route"
	"livedash/dashboard/store"
)

// Streamer is the SSE hub as the server uses it.
type Streamer interface {
	ServeStream(c echo.Context) error
	Shutdown(ctx context.Context) error
	Streams() int
}

// CollectorStatus is one collector's line in /api/v1/status. The status
// endpoint is open to anyone who can reach the server when no users are
// configured, so LastError is a class ("error", "timeout", "panic"), never
// the error's text, which can hold target URLs or a command's output: that
// text, with URL secrets redacted, is in the server log.
type CollectorStatus struct {
	Name      string    `json:"name"`
	Interval  string    `json:"interval"`
	LastError string    `json:"last_error,omitempty"`
	LastOK    time.Time `json:"last_ok,omitzero"`
}

// Deps are the parts the server routes to, and the server's options that
// are not configuration. Store and Registry are required; the rest may be
// nil while a part is not configured.
type Deps struct {
	Store      store.Store
	Registry   *prometheus.Registry
	Logger     *slog.Logger
	Version    string
	Stream     Streamer
	WebSocket  echo.HandlerFunc // GET /api/v1/ws, on the same hub as Stream
	API        []route.Route
	Push       echo.HandlerFunc         // POST /api/v1/push/:topic
	Assets     fs.FS                    // the page, rooted at index.html
	DevAssets  bool                     // Assets change on disk: do not cache them
	Collectors func() []CollectorStatus // for /api/v1/status
	// Nodes names this instance and the instances seen sharing its store,
	// for /api/v1/status; nil: status names none.
	Nodes func() NodeStatus
	// OnShutdown run when shutdown starts, beside the stream drain (e.g.
	// releasing parked long polls so they do not hold shutdown up).
	OnShutdown []func()
	// Middleware is appended to the server's chain after the built-in
	// middleware (request metrics, panic recovery, security headers, CORS,
	// the query limit), in order, and wraps every route: the page, health,
	// /metrics, the stream, long polls, push, and the 404 and 405 answers
	// of unknown paths and methods. It is where request-wide policy such as
	// authentication goes. A middleware that answers without calling next
	// (a 401) is counted and decorated like any answer; its errors are
	// rendered by the server's error handler. CORS answers preflight
	// requests itself, before this middleware.
	Middleware []echo.MiddlewareFunc
	// UnencryptedHTTP2 serves HTTP/2 without TLS (h2c, prior knowledge
	// only) beside HTTP/1.1 on the same listener.
	UnencryptedHTTP2 bool
	// Web is the loaded web configuration (LoadWebConfig): TLS, HTTP/2,
	// response headers, basic-auth users. nil: plain HTTP, no login.
	Web *WebConfig

	// What /api/v1/status says of the build and the machine besides Version.
	Commit    string // the commit the binary was built from, "" when unknown
	BuildDate string // RFC 3339, "" when unknown
	Host      string // the host name
	// PageProblem says why Assets is not the complete dashboard (a binary
	// built without the page's vendored files serves a page that says so);
	// "" when it is. /api/v1/status and /readyz report it.
	PageProblem string
	// Licenses is served as /licenses.txt (text): livedash's license and
	// those of the third-party code the page includes. nil: not routed.
	Licenses []byte
}

// Server is livedash's HTTP server.
type Server struct {
	cfg     config.Config
	deps    Deps
	log     *slog.Logger
	e       *echo.Echo
	started time.Time
	ready   atomic.Bool
	http    *httpMetrics
	assets  *assetServer

	hosts    *hostPolicy
	clients  *clientip.Resolver
	auth     *Authenticator // nil: no users configured
	apiLimit *apiLimiter    // nil: no per-client API rate
	access   *accessMetrics
	headers  map[string][]string // the web configuration's response headers
	routes   []routePattern      // every route but the page's, for page's 405s
}

// maxQueryBytes bounds the raw query string: longer → 414.
const maxQueryBytes = 8 << 10

// New builds the server and its route table.
func New(cfg config.Config, deps Deps) *Server {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Web == nil {
		deps.Web = &WebConfig{}
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Logger, started: time.Now()}
	s.hosts = newHostPolicy(cfg)
	var trusted []netip.Prefix
	for _, p := range cfg.HTTP.TrustedProxies {
		if pr, err := config.ParseProxy(p); err == nil { // Validate reports the others
			trusted = append(trusted, pr)
		}
	}
	s.clients = clientip.NewResolver(trusted)
	s.access = newAccessMetrics(deps.Registry)
	if len(deps.Web.Users) > 0 {
		s.auth = NewAuthenticator(deps.Web.Users, s.access.bcrypts)
	}
	s.apiLimit = newAPILimiter(cfg.HTTP.APIRate, cfg.HTTP.APIBurst)
	if len(deps.Web.Headers) > 0 {
		s.headers = map[string][]string{}
		for k, v := range deps.Web.Headers {
			s.headers[http.CanonicalHeaderKey(k)] = []string{v}
		}
	}
	s.ready.Store(true)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Logger.SetOutput(slogWriter{s.log})
	// Bounds for clients that send a head slowly (slowloris) and for idle
	// keep-alive connections. No WriteTimeout: it would cut every stream;
	// streams set per-write deadlines instead.
	e.Server.ReadHeaderTimeout = cfg.HTTP.ReadHeaderTimeout.D()
	e.Server.ReadTimeout = cfg.HTTP.ReadTimeout.D()
	e.Server.IdleTimeout = cfg.HTTP.IdleTimeout.D()
	e.Server.MaxHeaderBytes = cfg.HTTP.MaxHeaderBytes // net/http answers 431 above it
	e.Server.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	if deps.UnencryptedHTTP2 || (deps.Web.TLS != nil && !deps.Web.HTTP2) {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetHTTP2(deps.Web.TLS == nil || deps.Web.HTTP2) // over TLS
		p.SetUnencryptedHTTP2(deps.UnencryptedHTTP2)
		e.Server.Protocols = &p
	}
	e.HTTPErrorHandler = s.handleError
	s.e = e
	s.http = newHTTPMetrics(deps.Registry)

	// One chain for every route (Echo runs Use middleware for unknown
	// paths and methods too). Request metrics come first, so that they
	// count every answer, the 500 of a recovered panic included; recovery
	// comes next, so that it catches a panic anywhere after it. A foreign
	// Host is refused before anything else looks at the request; the
	// client address is known from then on. CORS answers preflight
	// requests (which carry no credentials) before the login is asked for;
	// the API rate comes before the login, so a flood of guesses is cut
	// cheaply.
	e.Use(s.http.middleware, s.recoverPanics, s.checkHost, s.resolveClient, s.securityHeaders)
	if len(cfg.HTTP.CORSOrigins) > 0 {
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins: cfg.HTTP.CORSOrigins,
			AllowMethods: []string{http.MethodGet, http.MethodPost},
			AllowHeaders: []string{"Last-Event-ID", "Authorization", "Content-Type", "If-None-Match"},
		}))
	}
	e.Use(s.limitAPI, s.authenticate, s.limitQuery)
	e.Use(deps.Middleware...)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/api/v1/status", s.status)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(deps.Registry, promhttp.HandlerOpts{
		Registry: deps.Registry, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError),
	})))
	if deps.Stream != nil {
		e.GET("/api/v1/stream", deps.Stream.ServeStream)
	}
	if deps.WebSocket != nil {
		e.GET("/api/v1/ws", deps.WebSocket)
	}
	for _, r := range deps.API {
		e.Add(r.Method, r.Path, r.Handler).Name = r.Name
	}
	if deps.Push != nil {
		e.POST("/api/v1/push/:topic", deps.Push)
	}
	if deps.Licenses != nil {
		e.GET("/licenses.txt", s.licenses)
	}
	if deps.Assets != nil {
		s.assets = newAssetServer(deps.Assets, !deps.DevAssets)
		e.GET("/", s.assets.serve)
		e.GET("/*", s.page)
	}
	s.routes = routePatterns(e.Routes())
	return s
}

// page serves GET /* — the page's files — except for paths that belong to
// another route (GET /api/v1/push/app: 405 naming the methods that route
// takes, not a 404 from the file system) or to the API (404 naming the
// OpenAPI document). Echo itself answers the wrong method on any other
// route with 405.
func (s *Server) page(c echo.Context) error {
	p := c.Request().URL.Path
	if allow := s.allowed(p); allow != "" {
		c.Response().Header().Set(echo.HeaderAllow, allow)
		return apierr.New(http.StatusMethodNotAllowed, "method_not_allowed",
			"%s is not allowed here; this endpoint takes %s", c.Request().Method, allow)
	}
	if strings.HasPrefix(p, "/api/") {
		return apierr.New(http.StatusNotFound, "not_found", "no such endpoint; /api/v1/openapi.json lists them all")
	}
	return s.assets.serve(c)
}

// routePattern is a route's path split at "/", with its methods.
type routePattern struct {
	segs    []string // ":name" matches one segment, "*" the rest
	methods []string
}

// routePatterns groups the routes other than the page's by path.
func routePatterns(routes []*echo.Route) []routePattern {
	byPath := map[string]*routePattern{}
	var order []string
	for _, r := range routes {
		if r.Path == "/" || r.Path == "/*" || r.Method == echo.RouteNotFound {
			continue
		}
		rp := byPath[r.Path]
		if rp == nil {
			rp = &routePattern{segs: strings.Split(r.Path, "/")}
			byPath[r.Path] = rp
			order = append(order, r.Path)
		}
		if !slices.Contains(rp.methods, r.Method) {
			rp.methods = append(rp.methods, r.Method)
		}
	}
	out := make([]routePattern, 0, len(order))
	for _, p := range order {
		slices.Sort(byPath[p].methods)
		out = append(out, *byPath[p])
	}
	return out
}

// allowed returns the methods of the route whose pattern matches path, as
// an Allow header value, or "" when none does.
func (s *Server) allowed(path string) string {
	segs := strings.Split(path, "/")
next:
	for _, rp := range s.routes {
		for i, want := range rp.segs {
			switch {
			case want == "*":
				return strings.Join(rp.methods, ", ")
			case i >= len(segs):
				continue next
			case strings.HasPrefix(want, ":"):
				if segs[i] == "" {
					continue next
				}
			case want != segs[i]:
				continue next
			}
		}
		if len(segs) == len(rp.segs) {
			return strings.Join(rp.methods, ", ")
		}
	}
	return ""
}

// Echo exposes the router (tests walk its routes).
func (s *Server) Echo() *echo.Echo { return s.e }

// Serve serves on ln until ctx is done, then shuts down: readiness goes off,
// the hub closes streams spread over its drain window (each with a retry:
// hint), the OnShutdown functions run (releasing parked long polls), and
// in-flight requests finish within the drain window plus a margin; what is
// left then is cut. It returns nil after a shutdown, else the error that
// stopped serving.
//
// With TLS configured, ln carries TLS (HTTP/2 offered through ALPN unless
// the web configuration turns it off). Connections are capped per client
// address (http.max_conns_per_client) and in total (http.max_conns) as they
// are accepted, before any TLS handshake.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if n := s.cfg.HTTP.MaxConnsPerClient; n > 0 {
		ln = &clientConnLimit{Listener: ln, max: n, trusted: s.clients, rejected: s.access.connRejected, conns: map[netip.Addr]int{}}
	}
	if s.cfg.HTTP.MaxConns > 0 {
		ln = netutil.LimitListener(ln, s.cfg.HTTP.MaxConns)
	}
	s.e.Listener = ln
	for _, fn := range s.deps.OnShutdown {
		s.e.Server.RegisterOnShutdown(fn)
	}
	errc := make(chan error, 1)
	if tc := s.deps.Web.TLS; tc != nil {
		s.e.Server.TLSConfig = tc
		go func() { errc <- s.e.Server.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- s.e.Server.Serve(ln) }()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.ready.Store(false)
	s.log.Info("shutting down", "drain_window", s.cfg.Stream.DrainWindow.D().String())
	// The hub ends its streams itself, spread over the drain window and each
	// with a retry: hint. A stream never ends on its own, so without this
	// http.Server.Shutdown would wait for every stream until its deadline
	// and then cut them all at once, without a hint.
	streamsDone := make(chan struct{})
	go func() {
		defer close(streamsDone)
		if s.deps.Stream == nil {
			return
		}
		dctx, cancel := context.WithTimeout(context.Background(), s.cfg.Stream.DrainWindow.D()+time.Second)
		defer cancel()
		if err := s.deps.Stream.Shutdown(dctx); err != nil {
			s.log.Warn("streams did not all close in the drain window", "err", err)
		}
	}()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Stream.DrainWindow.D()+2*time.Second)
	defer cancel()
	err := s.e.Server.Shutdown(sctx)
	<-streamsDone
	if err != nil {
		// Some handler outlived the drain window (a client that stopped
		// reading mid-write holds its handler until the write deadline).
		// Cut what is left: the frames are in the store, clients resume.
		s.log.Warn("connections still open after the drain window; closing them", "err", err)
		_ = s.e.Server.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serr)
	}
	return nil
}

// limitQuery answers 414 for an over-long query string, on every route.
func (s *Server) limitQuery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if len(c.Request().URL.RawQuery) > maxQueryBytes {
			return apierr.New(http.StatusRequestURITooLong, "query_too_long",
				"query string is %d bytes; at most %d are accepted", len(c.Request().URL.RawQuery), maxQueryBytes)
		}
		return next(c)
	}
}

// securityHeaders sets a strict CSP and friends on every response. The page
// uses no inline script or style, so 'self' is all it needs. API responses
// are data, never rendered as a document: they get the OWASP REST set
// instead — nosniff and a CSP that allows nothing and no framing — with no
// Referrer-Policy (a JSON body makes no requests). Fewer, shorter headers
// matter where one commit releases thousands of long polls at once; the
// values are shared slices, so setting them allocates nothing. The web
// configuration's headers (Strict-Transport-Security and the like) are set
// first, so the built-in policy wins where both name a header.
func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		for k, v := range s.headers {
			h[k] = v
		}
		h["X-Content-Type-Options"] = nosniff
		if strings.HasPrefix(c.Request().URL.Path, "/api/") {
			h["Content-Security-Policy"] = apiCSP
		} else {
			h["Content-Security-Policy"] = pageCSP
			h["Referrer-Policy"] = noReferrer
		}
		return next(c)
	}
}

var (
	nosniff    = []string{"nosniff"}
	apiCSP     = []string{"default-src 'none'; frame-ancestors 'none'"}
	pageCSP    = []string{"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"}
	noReferrer = []string{"no-referrer"}
)

// handleError is the one place errors become responses:
// {"error":{"code","message"}} with the error's status. Go error text never
// reaches the client.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var ae *apierr.Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &he):
		ae = fromEchoError(he)
	default:
		s.log.Error("request failed", "route", c.Path(), "method", c.Request().Method, "client", clientip.Of(c.Request()).String(), "err", err)
		ae = apierr.New(http.StatusInternalServerError, "internal_error", "internal error; see the server log")
	}
	if ae.Err != nil {
		s.log.Warn("request error", "route", c.Path(), "code", ae.Code, "client", clientip.Of(c.Request()).String(), "err", ae.Err)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(ae.Status)
		return
	}
	_ = c.JSON(ae.Status, apierr.BodyOf(ae))
}

func fromEchoError(he *echo.HTTPError) *apierr.Error {
	code := map[int]string{
		http.StatusNotFound:              "not_found",
		http.StatusMethodNotAllowed:      "method_not_allowed",
		http.StatusRequestEntityTooLarge: "body_too_large",
		http.StatusUnsupportedMediaType:  "unsupported_media_type",
		http.StatusUnauthorized:          "unauthorized",
		http.StatusForbidden:             "forbidden",
		http.StatusBadRequest:            "bad_request",
		http.StatusTooManyRequests:       "too_many_requests",
		http.StatusMisdirectedRequest:    "unknown_host",
	}[he.Code]
	if code == "" {
		code = "http_" + strconv.Itoa(he.Code)
	}
	msg := http.StatusText(he.Code)
	if m, ok := he.Message.(string); ok && he.Code < 500 {
		msg = m
	}
	return &apierr.Error{Status: he.Code, Code: code, Message: msg}
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is ready while the store takes writes and the server is not
// shutting down; load balancers stop sending new clients otherwise.
func (s *Server) readyz(c echo.Context) error {
	if !s.ready.Load() {
		return apierr.New(http.StatusServiceUnavailable, "shutting_down", "server is shutting down")
	}
	if err := s.deps.Store.Err(); err != nil {
		return &apierr.Error{Status: http.StatusServiceUnavailable, Code: "store_unwritable",
			Message: "the store's last append failed; see the server log", Err: err}
	}
	body := map[string]string{"status": "ready"}
	if s.deps.PageProblem != "" {
		body["page"] = pageIncomplete
	}
	return c.JSON(http.StatusOK, body)
}

// Values of the status's and readiness's "page" field.
const (
	pageComplete   = "complete"
	pageIncomplete = "incomplete"
)

// licenses serves GET /licenses.txt.
func (s *Server) licenses(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderCacheControl, "no-cache")
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", s.deps.Licenses)
}

type statusBody struct {
	Version       string            `json:"version"`
	Commit        string            `json:"commit"`
	BuildDate     string            `json:"build_date"`
	Host          string            `json:"host"`
	Page          string            `json:"page"`
	PageProblem   string            `json:"page_problem,omitempty"`
	Epoch         string            `json:"epoch"`
	Head          string            `json:"head"`
	Oldest        string            `json:"oldest"`
	HeadTime      *time.Time        `json:"head_time,omitempty"`
	OldestTime    *time.Time        `json:"oldest_time,omitempty"`
	Frames        int               `json:"frames"`
	StoreBytes    int64             `json:"store_bytes"`
	Retention     retentionBody     `json:"retention"`
	StartedAt     time.Time         `json:"started_at"`
	UptimeSeconds float64           `json:"uptime_seconds"`
	Streams       int               `json:"streams"`
	StoreError    string            `json:"store_error,omitempty"`
	Collectors    []CollectorStatus `json:"collectors"`
	Node          string            `json:"node,omitempty"`
	Nodes         []NodeSeen        `json:"nodes,omitempty"`
}

type retentionBody struct {
	Frames int    `json:"frames"`
	MaxAge string `json:"max_age"`
}

func (s *Server) status(c echo.Context) error {
	st := s.deps.Store
	b := statusBody{
		Version:       s.deps.Version,
		Commit:        s.deps.Commit,
		BuildDate:     s.deps.BuildDate,
		Host:          s.deps.Host,
		Page:          pageComplete,
		PageProblem:   s.deps.PageProblem,
		Epoch:         fmt.Sprintf("%016x", st.Epoch()),
		Head:          st.Head().String(),
		Oldest:        st.Oldest().String(),
		Frames:        st.Len(),
		StoreBytes:    st.Size(),
		Retention:     retentionBody{s.cfg.Store.Retention.Frames, s.cfg.Store.Retention.MaxAge.String()},
		StartedAt:     s.started.UTC(),
		UptimeSeconds: time.Since(s.started).Seconds(),
		Collectors:    []CollectorStatus{},
	}
	if st.Len() > 0 {
		r := st.After(store.ID{Epoch: st.Epoch(), Seq: st.Oldest().Seq - 1}, nil, store.Limits{Frames: 1})
		if len(r.Frames) == 1 {
			t := time.UnixMilli(r.Frames[0].TS).UTC()
			b.OldestTime = &t
		}
		for _, topic := range st.Topics() {
			if f, ok := st.Latest(topic); ok && f.ID == st.Head() {
				t := time.UnixMilli(f.TS).UTC()
				b.HeadTime = &t
			}
		}
	}
	if b.PageProblem != "" {
		b.Page = pageIncomplete
	}
	if s.deps.Stream != nil {
		b.Streams = s.deps.Stream.Streams()
	}
	if err := st.Err(); err != nil {
		b.StoreError = "the last append failed; see the server log"
	}
	if s.deps.Collectors != nil {
		b.Collectors = s.deps.Collectors()
	}
	if s.deps.Nodes != nil {
		ns := s.deps.Nodes()
		b.Node, b.Nodes = ns.Node, ns.Nodes
	}
	return c.JSON(http.StatusOK, b)
}

// slogWriter sends Echo's own log lines to slog.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Warn("echo", "msg", string(p))
	return len(p), nil
}
