package dashboard

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"livedash/config"
	"livedash/dashboard/apierr"
	"livedash/dashboard/clientip"
)

// Who may talk to the server, in the order the chain asks: is the Host
// one of ours (hostPolicy), who is the client (clientip.Resolver), has it
// logged in (Authenticator), is it within its share (apiLimiter). Each
// answers before any handler runs.

// publicRoutes need no login: load balancers and orchestrators probe them
// without credentials, and they reveal nothing.
var publicRoutes = map[string]bool{"/healthz": true, "/readyz": true}

// PublicPath reports whether the route at path needs no login (and is not
// subject to the web configuration's rate_limit): /healthz and /readyz.
func PublicPath(path string) bool { return publicRoutes[path] }

// streamRoutes are the long-lived routes: limited by the per-client stream
// count, not by the API's request rate.
var streamRoutes = map[string]bool{"/api/v1/stream": true, "/api/v1/ws": true}

// hostPolicy is http.allowed_hosts: the names a request's Host may carry.
// A web page on another name (DNS rebinding: the attacker's name resolving
// to this server's address) is refused, so it cannot read the dashboard
// through the victim's browser.
type hostPolicy struct {
	any      bool
	anyIP    bool // listening on every interface: IP literals are ours (rebinding needs a name)
	names    map[string]bool
	suffixes []string // ".example.com"
}

func newHostPolicy(cfg config.Config) *hostPolicy {
	p := &hostPolicy{names: map[string]bool{}}
	hosts := cfg.HTTP.AllowedHosts
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "[::1]"}
		host, _, _ := net.SplitHostPort(cfg.Listen)
		if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
			p.anyIP = true
		} else {
			hosts = append(hosts, host)
		}
	}
	for _, h := range hosts {
		h = normalHost(h)
		switch {
		case h == "*":
			p.any = true
		case strings.HasPrefix(h, "."):
			p.suffixes = append(p.suffixes, h)
		default:
			p.names[h] = true
		}
	}
	return p
}

// normalHost is a host as compared: lower case, without brackets or a
// trailing dot.
func normalHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	return h
}

// allows reports whether a Host header value (with or without a port) is
// ours. A request without a Host (HTTP/1.0) names nothing to rebind.
func (p *hostPolicy) allows(hostport string) bool {
	if p.any || hostport == "" {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = normalHost(host)
	if p.names[host] {
		return true
	}
	for _, s := range p.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	if p.anyIP {
		if _, err := netip.ParseAddr(host); err == nil {
			return true
		}
	}
	return false
}

func (s *Server) checkHost(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.hosts.allows(c.Request().Host) {
			return apierr.New(http.StatusMisdirectedRequest, "unknown_host",
				"this server does not answer for that host name; add it to http.allowed_hosts")
		}
		return next(c)
	}
}

// resolveClient stores the client address in the request's context when a
// trusted proxy names one in X-Forwarded-For; otherwise the TCP peer is the
// client and the request is left as it is (clientip.Of falls back to it).
func (s *Server) resolveClient(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		xff := r.Header.Values("X-Forwarded-For")
		if len(xff) == 0 {
			return next(c)
		}
		peer := clientip.Parse(r.RemoteAddr)
		if a := s.clients.Resolve(peer, xff); a != peer {
			c.SetRequest(r.WithContext(clientip.With(r.Context(), a)))
		}
		return next(c)
	}
}

// authenticate requires basic-auth credentials of a configured user on
// every route but the public ones, and applies the web configuration's
// server-wide rate_limit.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if publicRoutes[c.Path()] {
			return next(c)
		}
		if ae := s.deps.Web.LimitRate(c.Response().Header()); ae != nil {
			return ae
		}
		if s.auth == nil {
			return next(c)
		}
		if ae := s.auth.Authorize(c.Request(), c.Response().Header()); ae != nil {
			s.access.authFailures.Inc()
			return ae
		}
		return next(c)
	}
}

// limitAPI is the per-client token bucket of the JSON API (every /api/
// route but the streams).
func (s *Server) limitAPI(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !strings.HasPrefix(c.Request().URL.Path, "/api/") || streamRoutes[c.Path()] {
			return next(c)
		}
		if wait, ok := s.apiLimit.take(clientip.Key(clientip.Of(c.Request())), time.Now()); !ok {
			s.access.rateLimited.Inc()
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			return apierr.New(http.StatusTooManyRequests, "rate_limited",
				"too many API requests from this client; retry after %d s", int(math.Ceil(wait.Seconds())))
		}
		return next(c)
	}
}

// apiLimiter is a token bucket per client key: rate tokens per second up
// to burst. Buckets that have been full for a while are forgotten, so the
// map holds only clients active in the last few refill periods.
type apiLimiter struct {
	rate  float64
	burst float64

	mu        sync.Mutex
	buckets   map[netip.Addr]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newAPILimiter(ratePerSec float64, burst int) *apiLimiter {
	if ratePerSec <= 0 {
		return nil
	}
	return &apiLimiter{rate: ratePerSec, burst: float64(max(burst, 1)), buckets: map[netip.Addr]*bucket{}}
}

// take spends one token of key's bucket, or says how long until one is
// there.
func (l *apiLimiter) take(key netip.Addr, now time.Time) (time.Duration, bool) {
	if l == nil {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	if now.Sub(l.lastSweep) > max(full, time.Minute) {
		for k, b := range l.buckets {
			if now.Sub(b.at) > full {
				delete(l.buckets, k)
			}
		}
		l.lastSweep = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
	}
	b.tokens--
	return 0, true
}

// accessMetrics count what the access controls turned away.
type accessMetrics struct {
	authFailures prometheus.Counter
	bcrypts      prometheus.Counter
	rateLimited  prometheus.Counter
	connRejected prometheus.Counter
}

func newAccessMetrics(reg prometheus.Registerer) *accessMetrics {
	m := &accessMetrics{
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_http_auth_failures_total",
			Help: "Requests refused with 401: missing or wrong basic-auth credentials.",
		}),
		bcrypts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_http_auth_bcrypt_comparisons_total",
			Help: "bcrypt comparisons run to check basic-auth credentials (each credential is compared once, then cached).",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_http_rate_limited_total",
			Help: "JSON API requests refused with 429 by the per-client token bucket.",
		}),
		connRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_http_connections_rejected_total",
			Help: "Connections closed at accept because their client address held http.max_conns_per_client.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.authFailures, m.bcrypts, m.rateLimited, m.connRejected)
	}
	return m
}

// clientConnLimit wraps a listener so that one client address (an IPv6
// /64) holds at most max connections: more are closed as soon as they are
// accepted, before TLS or HTTP, so that one address cannot take every slot
// of the server's connection cap from the others. Connections from
// trusted proxies carry many clients and are not counted.
type clientConnLimit struct {
	net.Listener
	max      int
	trusted  *clientip.Resolver
	rejected prometheus.Counter

	mu    sync.Mutex
	conns map[netip.Addr]int
}

func (l *clientConnLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		peer := clientip.Parse(c.RemoteAddr().String())
		if l.trusted.Trusted(peer) {
			return c, nil
		}
		key := clientip.Key(peer)
		l.mu.Lock()
		if l.conns[key] >= l.max {
			l.mu.Unlock()
			l.rejected.Inc()
			_ = c.Close()
			continue
		}
		l.conns[key]++
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

func (l *clientConnLimit) release(key netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[key]--; l.conns[key] <= 0 {
		delete(l.conns, key)
	}
}

// countedConn gives its slot back once, on the first Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
