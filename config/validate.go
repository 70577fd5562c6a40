package config

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	Path   string // key path ("store.retention.frames") or environment variable name
	Value  string // the offending value as text; empty when there is none to show
	Reason string // what is wrong or what is required, for a user to read
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Path)
	if p.Value != "" {
		if b.Len() > 0 {
			b.WriteString(" = ")
		}
		b.WriteString(strconv.Quote(p.Value))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(p.Reason)
	return b.String()
}

// Errors lists every problem found in one pass; Load and Validate return it
// (as *Errors) so that a user can fix everything at once. It always holds at
// least one problem.
type Errors struct {
	Problems []Problem
}

// Error prints one line per problem, in the order they were found.
func (e *Errors) Error() string {
	if len(e.Problems) == 0 {
		return "config: no problems"
	}
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// problems collects Problems; its zero value is ready to use.
type problems []Problem

func (ps *problems) add(path string, value any, reason string) {
	*ps = append(*ps, Problem{Path: path, Value: formatValue(value), Reason: reason})
}

// err returns nil or an *Errors holding ps.
func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &Errors{Problems: ps}
}

// formatValue renders a value for a Problem. Pointers are followed, so a *bool
// prints as its value, and nil prints as nothing.
func formatValue(v any) string {
	if v == nil {
		return ""
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return ""
		}
		rv = rv.Elem()
	}
	switch x := rv.Interface().(type) {
	case string:
		return x
	case []string:
		return strings.Join(x, ",")
	case fmt.Stringer:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

// Limits enforced by Validate, named where the reason is not obvious.
const (
	maxRetentionFrames = 100_000_000
	// maxHeartbeat stays under the ~60 s after which common proxies and load
	// balancers cut an idle connection.
	maxHeartbeat   = 55 * time.Second
	minRetry       = 100 * time.Millisecond
	maxAPILimit    = 10_000
	maxAPIWait     = 5 * time.Minute
	minPushBody    = 1 << 10
	maxPushBody    = 64 << 20
	minHeaderBytes = 1024
	// streamConnsReserve is how many of http.max_conns streams may never take.
	streamConnsReserve = 100
	minPushToken       = 16
	maxPushLabels      = 1000
	maxPushLabelBytes  = 64 << 10
	maxPushSeries      = 1_000_000
	maxPushTopics      = 100_000
)

// Validate checks the whole configuration and returns nil or an *Errors that
// lists every problem, each with its key path. It does not change c.
//
// Zero values with a meaning: store.retention.max_age 0 = no age limit
// (frames alone bound the ring); store.max_size_bytes 0 = no size cap;
// stream.max_streams and stream.max_streams_per_ip 0 = no limit;
// stream.max_lifetime 0 = unlimited; stream.drain_window 0 = close every
// stream at once; api.max_wait 0 = long polling disabled (wait is clamped to 0).
func (c *Config) Validate() error {
	var ps problems
	add := ps.add

	validateListen(c.Listen, add)
	oneOf(add, "log_format", c.LogFormat, "text", "json")
	oneOf(add, "log_level", c.LogLevel, "debug", "info", "warn", "error")

	validateNode(c.Node, add)

	s := c.Store
	if strings.TrimSpace(s.Path) == "" {
		add("store.path", s.Path, "must not be empty")
	}
	intRange(add, "store.retention.frames", s.Retention.Frames, 1, maxRetentionFrames)
	if a := s.Retention.MaxAge.D(); a != 0 && a < time.Second {
		add("store.retention.max_age", s.Retention.MaxAge, "must be at least 1s, or 0 for no age limit")
	}
	positive(add, "store.lock_timeout", s.LockTimeout)
	if s.MaxSizeBytes < 0 {
		add("store.max_size_bytes", s.MaxSizeBytes, "must not be negative (0 = no cap)")
	}
	validateRedis(s.Redis, add)

	h := c.HTTP
	positive(add, "http.read_header_timeout", h.ReadHeaderTimeout)
	positive(add, "http.read_timeout", h.ReadTimeout)
	positive(add, "http.idle_timeout", h.IdleTimeout)
	if h.MaxHeaderBytes < minHeaderBytes {
		add("http.max_header_bytes", h.MaxHeaderBytes, fmt.Sprintf("must be at least %d", minHeaderBytes))
	}
	if h.MaxConns < 1 {
		add("http.max_conns", h.MaxConns, "must be at least 1")
	}
	validateOrigins(h.CORSOrigins, add)
	validateHosts(h.AllowedHosts, add)
	validateProxies(h.TrustedProxies, add)
	if h.MaxConnsPerClient < 0 {
		add("http.max_conns_per_client", h.MaxConnsPerClient, "must not be negative (0 = no cap)")
	} else if h.MaxConns >= 1 && h.MaxConnsPerClient > h.MaxConns/2 {
		add("http.max_conns_per_client", h.MaxConnsPerClient,
			fmt.Sprintf("must be at most half of http.max_conns (%d), so that one address leaves room for others", h.MaxConns))
	}
	if h.MaxPollsPerClient < 0 {
		add("http.max_polls_per_client", h.MaxPollsPerClient, "must not be negative (0 = no cap)")
	}
	if h.APIRate < 0 || math.IsNaN(h.APIRate) || math.IsInf(h.APIRate, 0) {
		add("http.api_rate", h.APIRate, "must be a number of requests per second, 0 or more (0 = no limit)")
	} else if h.APIRate > 0 && h.APIBurst < 1 {
		add("http.api_burst", h.APIBurst, "must be at least 1 when http.api_rate is set")
	}

	st := c.Stream
	if st.QueueSize < 1 {
		add("stream.queue_size", st.QueueSize, "must be at least 1")
	}
	positive(add, "stream.write_timeout", st.WriteTimeout)
	if hb := st.Heartbeat.D(); hb < time.Second || hb > maxHeartbeat {
		add("stream.heartbeat", st.Heartbeat, "must be between 1s and 55s (idle proxies cut connections at about 60s)")
	}
	if st.Retry.D() < minRetry {
		add("stream.retry", st.Retry, "must be at least 100ms")
	}
	if st.MaxStreams < 0 {
		add("stream.max_streams", st.MaxStreams, "must not be negative (0 = no limit)")
	}
	// Streams hold connections; if they could fill the listener, health
	// checks, /metrics and push would queue behind them.
	if c.HTTP.MaxConns > 0 && st.MaxStreams > c.HTTP.MaxConns-streamConnsReserve {
		add("stream.max_streams", st.MaxStreams,
			fmt.Sprintf("must leave at least %d of http.max_conns (%d) for other requests", streamConnsReserve, c.HTTP.MaxConns))
	}
	if st.MaxStreamsPerIP < 0 {
		add("stream.max_streams_per_ip", st.MaxStreamsPerIP, "must not be negative (0 = no limit)")
	}
	if st.ReplayMaxFrames < 1 {
		add("stream.replay_max_frames", st.ReplayMaxFrames, "must be at least 1")
	}
	if st.ReplayMaxBytes < 1 {
		add("stream.replay_max_bytes", st.ReplayMaxBytes, "must be at least 1")
	}
	nonNegative(add, "stream.drain_window", st.DrainWindow)
	nonNegative(add, "stream.max_lifetime", st.MaxLifetime)

	a := c.API
	intRange(add, "api.max_limit", a.MaxLimit, 1, maxAPILimit)
	if a.DefaultLimit < 1 {
		add("api.default_limit", a.DefaultLimit, "must be at least 1")
	} else if a.MaxLimit >= 1 && a.DefaultLimit > a.MaxLimit {
		add("api.default_limit", a.DefaultLimit, fmt.Sprintf("must not exceed api.max_limit (%d)", a.MaxLimit))
	}
	if w := a.MaxWait.D(); w < 0 || w > maxAPIWait {
		add("api.max_wait", a.MaxWait, "must be between 0 and 5m")
	}
	if a.QueryMaxPoints < 1 {
		add("api.query_max_points", a.QueryMaxPoints, "must be at least 1")
	}
	if a.QueryMaxFrames < 1 {
		add("api.query_max_frames", a.QueryMaxFrames, "must be at least 1")
	}

	p := c.Push
	if strings.IndexFunc(p.Token, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		// The value is a secret and is never echoed.
		add("push.token", nil, "must not contain spaces or control characters")
	}
	if p.Token != "" && len(p.Token) < minPushToken {
		// Shorter tokens can be guessed; the value is never echoed.
		add("push.token", nil, fmt.Sprintf("must be at least %d bytes (e.g. the output of `openssl rand -hex 16`)", minPushToken))
	}
	if p.MaxBodyBytes < minPushBody || p.MaxBodyBytes > maxPushBody {
		add("push.max_body_bytes", p.MaxBodyBytes, "must be between 1024 (1 KiB) and 67108864 (64 MiB)")
	}
	if p.MaxSamples < 1 {
		add("push.max_samples", p.MaxSamples, "must be at least 1")
	}
	intRange(add, "push.max_labels", p.MaxLabels, 1, maxPushLabels)
	intRange(add, "push.max_label_name_bytes", p.MaxLabelNameBytes, 1, maxPushLabelBytes)
	intRange(add, "push.max_label_value_bytes", p.MaxLabelValueBytes, 1, maxPushLabelBytes)
	intRange(add, "push.max_series_per_topic", p.MaxSeriesPerTopic, 1, maxPushSeries)
	intRange(add, "push.max_topics", p.MaxTopics, 1, maxPushTopics)

	c.Collectors.validate(add)
	validateThresholds(c.Thresholds, add)
	c.Dashboard.validate(add)
	return ps.err()
}

// maxNodeLen keeps a node name a short label value.
const maxNodeLen = 128

func validateNode(node string, add func(string, any, string)) {
	switch {
	case len(node) > maxNodeLen:
		add("node", node[:32]+"…", fmt.Sprintf("must be at most %d bytes", maxNodeLen))
	case !utf8.ValidString(node) || strings.IndexFunc(node, unicode.IsControl) >= 0:
		add("node", node, "must be UTF-8 text without control characters")
	case node != strings.TrimSpace(node):
		add("node", node, "must not start or end with spaces")
	}
}

// validateRedis checks store.redis. The URL is shown redacted: it may hold
// a password.
func validateRedis(r Redis, add func(string, any, string)) {
	if r.URL != "" {
		shown := RedactURL(r.URL)
		u, err := url.Parse(r.URL)
		switch {
		case err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" || u.Opaque != "":
			add("store.redis.url", shown, `must be redis://[[user]:password@]host[:port][/db] or rediss://… (TLS), e.g. "redis://127.0.0.1:6379/0"`)
		case u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(r.URL, "?") || strings.HasSuffix(r.URL, "#"):
			add("store.redis.url", shown, "must have no query or fragment: timeouts and pool size are store.redis.* keys")
		case u.Port() != "" && !validPort(u.Port()):
			add("store.redis.url", shown, "port must be a number from 1 to 65535")
		case u.Path != "" && u.Path != "/" && !isDBNumber(strings.TrimPrefix(u.Path, "/")):
			add("store.redis.url", shown, "path must be a database number such as /0")
		}
	}
	p := r.KeyPrefix
	switch {
	case p == "":
		add("store.redis.key_prefix", p, "must not be empty")
	case len(p) > 64:
		add("store.redis.key_prefix", p, "must be at most 64 bytes")
	case strings.ContainsAny(p, "{}") || strings.IndexFunc(p, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		add("store.redis.key_prefix", p, "must not contain braces, spaces or control characters")
	}
	intRange(add, "store.redis.pool_size", r.PoolSize, 1, 1000)
	positive(add, "store.redis.dial_timeout", r.DialTimeout)
	positive(add, "store.redis.read_timeout", r.ReadTimeout)
	positive(add, "store.redis.write_timeout", r.WriteTimeout)
}

func isDBNumber(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && strconv.FormatUint(n, 10) == s
}

func validateListen(listen string, add func(string, any, string)) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		add("listen", listen, `must be host:port, e.g. "127.0.0.1:7070" or ":7070"`)
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(n, 10) != port {
		add("listen", listen, "port must be a number from 0 to 65535")
	}
	if strings.ContainsAny(host, " /") {
		add("listen", listen, "host must be an IP address or a host name")
	}
}

// validateOrigins checks http.cors_origins. Browsers send Origin as
// scheme://host[:port] in lower case without a default port, and the server
// compares exactly, so any other spelling could never match.
func validateOrigins(origins []string, add func(string, any, string)) {
	for i, o := range origins {
		path := fmt.Sprintf("http.cors_origins[%d]", i)
		if o == "*" {
			if len(origins) > 1 {
				add(path, o, `"*" must be the only origin when used`)
			}
			continue
		}
		u, err := url.Parse(o)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "":
			add(path, o, `must be an absolute http or https origin such as "https://example.com"`)
		case u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#"):
			add(path, o, "must be scheme://host[:port] only, without user, path (even a trailing /), query or fragment")
		case o != strings.ToLower(o):
			add(path, o, "must be lower case, as browsers send it")
		case (u.Scheme == "http" && u.Port() == "80") || (u.Scheme == "https" && u.Port() == "443"):
			add(path, o, "must omit the default port, as browsers do")
		case u.Port() != "" && !validPort(u.Port()):
			add(path, o, "port must be a number from 1 to 65535")
		}
	}
}

// validateHosts checks http.allowed_hosts: host names or addresses as a
// Host header carries them, without scheme, port or path.
func validateHosts(hosts []string, add func(string, any, string)) {
	for i, h := range hosts {
		path := fmt.Sprintf("http.allowed_hosts[%d]", i)
		name := strings.TrimPrefix(h, ".")
		switch {
		case h == "*":
			if len(hosts) > 1 {
				add(path, h, `"*" must be the only entry when used`)
			}
		case strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]"):
			if a, err := netip.ParseAddr(name[1 : len(name)-1]); err != nil || !a.Is6() || a.Zone() != "" {
				add(path, h, "must be an IPv6 address in brackets, e.g. [::1]")
			}
		case name == "" || strings.ContainsAny(name, "/:@?#* \t[]"):
			add(path, h, `must be a host name or address without scheme, port or path, e.g. "dash.example.com", ".example.com" or "[::1]"`)
		}
	}
}

// validateProxies checks http.trusted_proxies: CIDRs or single addresses.
func validateProxies(proxies []string, add func(string, any, string)) {
	for i, p := range proxies {
		if _, err := ParseProxy(p); err != nil {
			add(fmt.Sprintf("http.trusted_proxies[%d]", i), p, `must be a CIDR such as "10.0.0.0/8" or an address such as "127.0.0.1"`)
		}
	}
}

// ParseProxy reads one http.trusted_proxies entry: a CIDR, or an address
// standing for itself alone. IPv4-mapped IPv6 forms are unmapped.
func ParseProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func validPort(p string) bool {
	n, err := strconv.ParseUint(p, 10, 16)
	return err == nil && n > 0 && strconv.FormatUint(n, 10) == p
}

func oneOf(add func(string, any, string), path, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	add(path, v, "must be one of "+strings.Join(allowed, ", "))
}

func intRange(add func(string, any, string), path string, v, lo, hi int) {
	switch {
	case v < lo:
		add(path, v, fmt.Sprintf("must be at least %d", lo))
	case v > hi:
		add(path, v, fmt.Sprintf("must be at most %d", hi))
	}
}

func positive(add func(string, any, string), path string, d Duration) {
	if d <= 0 {
		add(path, d, "must be greater than 0")
	}
}

func nonNegative(add func(string, any, string), path string, d Duration) {
	if d < 0 {
		add(path, d, "must not be negative")
	}
}
