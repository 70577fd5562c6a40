// Package config is livedash's configuration: one typed struct with documented
// defaults, loaded from a YAML file, then the environment, then flags, and
// validated as a whole so that every problem is reported at once.
//
// config imports nothing of livedash's own packages.
package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration. The yaml key of every field is the name
// users write; the environment variable for a key is LIVEDASH_ followed by the
// key path in upper case with "." replaced by "_" (store.retention.max_age →
// LIVEDASH_STORE_RETENTION_MAX_AGE). In the environment, lists of strings are
// comma-separated; lists of structures and maps are set in the file only.
type Config struct {
	// Listen is the HTTP listen address. Default 127.0.0.1:7070: loopback,
	// because nobody has to log in until basic_auth_users are configured in
	// the web configuration file (HTTP.WebConfigFile).
	Listen    string `yaml:"listen"`
	LogFormat string `yaml:"log_format"` // text (default) or json
	LogLevel  string `yaml:"log_level"`  // debug, info (default), warn, error
	// Node names this instance among several sharing one store (Redis):
	// status lists the nodes seen, and with a shared store the built-in
	// collectors' samples carry it as the label "node". Empty (the default)
	// means the host name; see NodeName.
	Node string `yaml:"node"`

	Store      Store      `yaml:"store"`
	HTTP       HTTP       `yaml:"http"`
	Stream     Stream     `yaml:"stream"`
	API        API        `yaml:"api"`
	Push       Push       `yaml:"push"`
	Collectors Collectors `yaml:"collectors"`

	// Thresholds are the warning and critical levels of series: the
	// defaults watch CPU, memory, filesystems and load. Setting the list
	// replaces the defaults; [] watches nothing.
	Thresholds []Threshold `yaml:"thresholds"`
	// Dashboard chooses the page's panels; without it, the built-in ones.
	Dashboard Dashboard `yaml:"dashboard"`
}

// Store configures the ring: bbolt by default, Redis when Redis.URL is set.
type Store struct {
	// Path of the bbolt file. Default: $XDG_STATE_HOME/livedash/livedash.db
	// when XDG_STATE_HOME is set, else ./data/livedash.db.
	Path        string    `yaml:"path"`
	Retention   Retention `yaml:"retention"`
	LockTimeout Duration  `yaml:"lock_timeout"` // default 1s: a second process fails fast
	// MaxSizeBytes caps the file (bbolt Options.MaxSize); 0 = no cap.
	MaxSizeBytes int64 `yaml:"max_size_bytes"`
	// NoSync skips fsync on commit (tests and benchmarks only; unsafe on power loss).
	NoSync bool `yaml:"no_sync"`
	// Redis, when its URL is set, holds the ring instead of the bbolt file
	// (Path, LockTimeout, MaxSizeBytes and NoSync are then unused), so that
	// several instances share it. Retention applies to it the same way.
	Redis Redis `yaml:"redis"`
}

// Redis configures the Redis Streams ring shared by several instances.
type Redis struct {
	// URL is redis://[[user]:password@]host[:port][/db] or rediss://… for
	// TLS. Empty (the default): the bbolt store. Put the password in the
	// environment (LIVEDASH_STORE_REDIS_URL) rather than in a file.
	URL string `yaml:"url"`
	// Require makes the server exit with a message when Redis does not
	// answer at start. Default false: it retries with backoff, unready
	// meanwhile.
	Require bool `yaml:"require"`
	// KeyPrefix names the ring's keys ({prefix}:frames, …), so that several
	// dashboards can share one Redis. Default "livedash".
	KeyPrefix   string   `yaml:"key_prefix"`
	PoolSize    int      `yaml:"pool_size"`    // connections for appends and reads; default 10
	DialTimeout Duration `yaml:"dial_timeout"` // default 2s
	// ReadTimeout and WriteTimeout bound each round trip; an append that
	// takes longer fails (and is counted). Default 2s each.
	ReadTimeout  Duration `yaml:"read_timeout"`
	WriteTimeout Duration `yaml:"write_timeout"`
}

// Retention bounds the ring. Both limits apply; the first reached trims.
type Retention struct {
	Frames int      `yaml:"frames"`  // default 100000
	MaxAge Duration `yaml:"max_age"` // default 24h; 0 = no age limit
}

// HTTP holds server-wide timeouts and limits. There is deliberately no
// server-wide write timeout: it would cut every stream (streams use per-write
// deadlines instead, see Stream.WriteTimeout).
type HTTP struct {
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"` // default 5s (slowloris)
	ReadTimeout       Duration `yaml:"read_timeout"`        // default 30s (bodies of push requests)
	IdleTimeout       Duration `yaml:"idle_timeout"`        // default 60s (idle keep-alive)
	MaxHeaderBytes    int      `yaml:"max_header_bytes"`    // default 16384 → 431 above
	MaxConns          int      `yaml:"max_conns"`           // listener cap, default 15000
	CORSOrigins       []string `yaml:"cors_origins"`        // exact origins allowed; "*" only without credentials

	// WebConfigFile is a Prometheus exporter-toolkit web configuration file
	// (tls_server_config, http_server_config, basic_auth_users); also the
	// --web.config.file flag. Empty: plain HTTP, nobody logs in.
	WebConfigFile string `yaml:"web_config_file"`
	// AllowedHosts are the host names (or addresses) a request's Host header
	// may name, any port; others get 421 before any handler runs, which
	// stops DNS rebinding. A leading "." allows every subdomain
	// (".example.com"); "*" allows any host. Empty (the default):
	// localhost, 127.0.0.1, [::1] and the listen host — plus any IP address
	// when listening on all interfaces, since a rebinding attack needs a name.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// TrustedProxies are CIDRs of reverse proxies: only a connection from
	// one of them has its X-Forwarded-For believed, and then the client
	// address it names is the one every per-client limit and log line uses.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// MaxConnsPerClient caps the connections one client address (an IPv6
	// /64) holds at once; more are closed at accept, so one address cannot
	// take the slots of max_conns from others. Trusted proxies are exempt.
	// 0 = no cap; default 256.
	MaxConnsPerClient int `yaml:"max_conns_per_client"`
	// MaxPollsPerClient caps the long polls one client parks at once
	// (429 above it). 0 = no cap; default 64.
	MaxPollsPerClient int `yaml:"max_polls_per_client"`
	// APIRate and APIBurst are a token bucket per client on the JSON API
	// (/api/v1/* except the stream and WebSocket routes): APIRate requests
	// per second on average, bursts of APIBurst; above it 429 with
	// Retry-After. APIRate 0 = no limit; defaults 50 and 500.
	APIRate  float64 `yaml:"api_rate"`
	APIBurst int     `yaml:"api_burst"`
}

// Stream configures GET /api/v1/stream.
type Stream struct {
	QueueSize       int      `yaml:"queue_size"`         // frames a subscriber may lag before it is cut; default 1024
	WriteTimeout    Duration `yaml:"write_timeout"`      // per-write deadline; default 10s
	Heartbeat       Duration `yaml:"heartbeat"`          // idle heartbeat; default 15s
	Retry           Duration `yaml:"retry"`              // base retry: hint, jittered per connection; default 2s
	MaxStreams      int      `yaml:"max_streams"`        // 0 = no limit; default 10000
	MaxStreamsPerIP int      `yaml:"max_streams_per_ip"` // 0 = no limit; default 64
	ReplayMaxFrames int      `yaml:"replay_max_frames"`  // default 10000
	ReplayMaxBytes  int      `yaml:"replay_max_bytes"`   // default 8 MiB
	DrainWindow     Duration `yaml:"drain_window"`       // shutdown spreads stream closes over this; default 5s
	MaxLifetime     Duration `yaml:"max_lifetime"`       // 0 = unlimited; jittered ±10%
	// WSCompression negotiates permessage-deflate on /api/v1/ws with
	// clients that offer it; off by default (it costs CPU per connection).
	WSCompression bool `yaml:"ws_compression"`
}

// API configures the JSON polling API.
type API struct {
	DefaultLimit   int      `yaml:"default_limit"`    // default 100
	MaxLimit       int      `yaml:"max_limit"`        // default 1000
	MaxWait        Duration `yaml:"max_wait"`         // long-poll clamp; default 60s
	QueryMaxPoints int      `yaml:"query_max_points"` // default 2000
	QueryMaxFrames int      `yaml:"query_max_frames"` // frames one range query may scan; default 200000
}

// Push configures POST /api/v1/push/<topic>. Off unless Token is set.
type Push struct {
	Token        string `yaml:"token"`          // static bearer token, at least 16 bytes; empty = push disabled
	MaxBodyBytes int64  `yaml:"max_body_bytes"` // default 1 MiB
	MaxSamples   int    `yaml:"max_samples"`    // per request; default 10000
	// Caps that keep what a push adds cheap for every reader of the
	// catalog and latest values: labels on one sample (default 32), bytes
	// of a label name (default 128) and of a label value (default 1024),
	// distinct series one topic may accumulate (default 10000) and pushed
	// topics in total (default 100). Over a cap: 413 or 400 naming it.
	MaxLabels          int `yaml:"max_labels"`
	MaxLabelNameBytes  int `yaml:"max_label_name_bytes"`
	MaxLabelValueBytes int `yaml:"max_label_value_bytes"`
	MaxSeriesPerTopic  int `yaml:"max_series_per_topic"`
	MaxTopics          int `yaml:"max_topics"`
}

// Duration is a time.Duration written as a Go duration string ("1s", "24h").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default values that are not plain literals in defaults.
const (
	defaultListen  = "127.0.0.1:7070"
	stateDirName   = "livedash"
	stateFileName  = "livedash.db"
	relativeDBPath = "data/livedash.db"
)

// Default returns the configuration livedash runs with when nothing is
// configured. It reads XDG_STATE_HOME from the process environment to place
// the store; Load uses its environ argument instead.
func Default() Config { return defaults(os.Getenv) }

// defaults is the one place where default values live. getenv supplies
// XDG_STATE_HOME; everything else is constant.
func defaults(getenv func(string) string) Config {
	return Config{
		Listen:    defaultListen,
		LogFormat: "text",
		LogLevel:  "info",
		Store: Store{
			Path: defaultStorePath(getenv("XDG_STATE_HOME")),
			Retention: Retention{
				Frames: 100_000,
				MaxAge: Duration(24 * time.Hour),
			},
			LockTimeout:  Duration(time.Second),
			MaxSizeBytes: 0,
			NoSync:       false,
			Redis: Redis{
				URL:          "",
				Require:      false,
				KeyPrefix:    "livedash",
				PoolSize:     10,
				DialTimeout:  Duration(2 * time.Second),
				ReadTimeout:  Duration(2 * time.Second),
				WriteTimeout: Duration(2 * time.Second),
			},
		},
		HTTP: HTTP{
			ReadHeaderTimeout: Duration(5 * time.Second),
			ReadTimeout:       Duration(30 * time.Second),
			IdleTimeout:       Duration(60 * time.Second),
			MaxHeaderBytes:    16 << 10,
			MaxConns:          15_000,
			CORSOrigins:       nil,
			WebConfigFile:     "",
			AllowedHosts:      nil,
			TrustedProxies:    nil,
			MaxConnsPerClient: 256,
			MaxPollsPerClient: 64,
			APIRate:           50,
			APIBurst:          500,
		},
		Stream: Stream{
			QueueSize:       1024,
			WriteTimeout:    Duration(10 * time.Second),
			Heartbeat:       Duration(15 * time.Second),
			Retry:           Duration(2 * time.Second),
			MaxStreams:      10_000,
			MaxStreamsPerIP: 64,
			ReplayMaxFrames: 10_000,
			ReplayMaxBytes:  8 << 20,
			DrainWindow:     Duration(5 * time.Second),
			MaxLifetime:     0,
		},
		API: API{
			DefaultLimit:   100,
			MaxLimit:       1000,
			MaxWait:        Duration(60 * time.Second),
			QueryMaxPoints: 2000,
			QueryMaxFrames: 200_000,
		},
		Push: Push{
			Token:              "",
			MaxBodyBytes:       1 << 20,
			MaxSamples:         10_000,
			MaxLabels:          32,
			MaxLabelNameBytes:  128,
			MaxLabelValueBytes: 1024,
			MaxSeriesPerTopic:  10_000,
			MaxTopics:          100,
		},
		Collectors: defaultCollectors(),
		Thresholds: defaultThresholds(),
	}
}

// defaultStorePath follows the XDG base directory spec, which says a relative
// XDG_STATE_HOME is invalid and must be ignored.
func defaultStorePath(xdgStateHome string) string {
	if xdgStateHome != "" && filepath.IsAbs(xdgStateHome) {
		return filepath.Join(xdgStateHome, stateDirName, stateFileName)
	}
	return relativeDBPath
}

// Redacted returns a copy of c that is safe to print: the push token is
// replaced, and so are the user info and query values of target URLs
// (RedactURL). c's lists are not modified.
func (c Config) Redacted() Config {
	if c.Push.Token != "" {
		c.Push.Token = Redaction
	}
	c.Collectors.HTTP.Targets = slices.Clone(c.Collectors.HTTP.Targets)
	for i := range c.Collectors.HTTP.Targets {
		c.Collectors.HTTP.Targets[i].URL = RedactURL(c.Collectors.HTTP.Targets[i].URL)
	}
	c.Collectors.Prometheus.Targets = slices.Clone(c.Collectors.Prometheus.Targets)
	for i := range c.Collectors.Prometheus.Targets {
		c.Collectors.Prometheus.Targets[i].URL = RedactURL(c.Collectors.Prometheus.Targets[i].URL)
	}
	c.Store.Redis.URL = RedactURL(c.Store.Redis.URL)
	return c
}

// Redaction is what stands in place of a secret in printed configuration,
// logs and status.
const Redaction = "REDACTED"

// RedactURL returns raw safe to print: user info (user and password alike:
// either can be a token) becomes REDACTED, and so does every query value
// (the names stay, so a reader still sees which parameters are set); the
// fragment is dropped. Text that does not parse as a URL is replaced whole,
// as it may still hold a secret.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Redaction
	}
	if u.User != nil {
		u.User = url.User(Redaction)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			for i := range q[k] {
				q[k][i] = Redaction
			}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment, u.RawFragment, u.ForceQuery = "", "", false
	return u.String()
}

// NodeName is the name this instance goes by: Node, or the host name when
// Node is empty (or "livedash" when even that is unknown).
func (c Config) NodeName() string {
	if c.Node != "" {
		return c.Node
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "livedash"
}

// SharedStore says whether the ring is shared with other instances (Redis).
func (c Config) SharedStore() bool { return c.Store.Redis.URL != "" }

// String formats d in Go syntax without trailing zero units ("24h", "1m30s",
// "1.5s", "0s"); ParseDuration reads it back to the same value.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalText implements encoding.TextMarshaler (with UnmarshalText, this
// makes Duration usable with flag.TextVar).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalText parses a Go duration string ("1s", "1m30s"). Negative
// durations are rejected, and so are numbers without a unit, except "0".
// On error d is unchanged.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := parseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// UnmarshalYAML accepts a YAML scalar holding a duration string. A YAML number
// other than 0 is rejected: "timeout: 5" is ambiguous (seconds? nanoseconds?).
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &DurationError{Value: "", Reason: `must be a duration such as "30s", not a list or mapping`}
	}
	return d.UnmarshalText([]byte(n.Value))
}

// DurationError reports a value that is not an acceptable Duration.
type DurationError struct {
	Value  string // the text as written
	Reason string // why it is rejected, for a user to read
}

func (e *DurationError) Error() string {
	if e.Value == "" {
		return "duration: " + e.Reason
	}
	return fmt.Sprintf("duration %q: %s", e.Value, e.Reason)
}

func parseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, &DurationError{Value: s, Reason: `must be a duration such as "30s"`}
	}
	if t == "0" {
		return 0, nil
	}
	if isBareNumber(t) {
		return 0, &DurationError{Value: s, Reason: fmt.Sprintf("needs a unit (ns, us, ms, s, m, h), e.g. %q", t+"s")}
	}
	v, err := time.ParseDuration(t)
	if err != nil {
		return 0, &DurationError{Value: s, Reason: `not a duration; write it like "500ms", "30s" or "1m30s"`}
	}
	if v < 0 {
		return 0, &DurationError{Value: s, Reason: "must not be negative"}
	}
	return Duration(v), nil
}

// isBareNumber reports whether s is a decimal number such as "5", "-2" or
// "1.5", which time.ParseDuration would reject only for its missing unit.
func isBareNumber(s string) bool {
	s = strings.TrimLeft(s, "+-")
	digits, dots := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}
