// Package config is livedash's configuration: one typed struct with documented
// defaults, loaded from a YAML file, then the environment, then flags, and
// validated as a whole so that every problem is reported at once.
//
// config imports nothing of livedash's own packages.
package config

import "time"

// Config is the whole configuration. The yaml key of every field is the name
// users write; the environment variable for a key is LIVEDASH_ followed by the
// key path in upper case with "." replaced by "_" (store.retention.max_age →
// LIVEDASH_STORE_RETENTION_MAX_AGE). Lists (targets) are set in the file only.
type Config struct {
	// Listen is the HTTP listen address. Default 127.0.0.1:7070: loopback,
	// because the dashboard has no authentication of its own yet.
	Listen    string `yaml:"listen"`
	LogFormat string `yaml:"log_format"` // text (default) or json
	LogLevel  string `yaml:"log_level"`  // debug, info (default), warn, error

	Store      Store      `yaml:"store"`
	HTTP       HTTP       `yaml:"http"`
	Stream     Stream     `yaml:"stream"`
	API        API        `yaml:"api"`
	Push       Push       `yaml:"push"`
	Collectors Collectors `yaml:"collectors"`
}

// Store configures the bbolt ring.
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
}

// Retention bounds the ring. Both limits apply; the first reached trims.
type Retention struct {
	Frames int      `yaml:"frames"`  // default 100000
	MaxAge Duration `yaml:"max_age"` // default 24h
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
	Token        string `yaml:"token"`          // static bearer token; empty = push disabled
	MaxBodyBytes int64  `yaml:"max_body_bytes"` // default 1 MiB
	MaxSamples   int    `yaml:"max_samples"`    // per request; default 10000
}

// Duration is a time.Duration written as a Go duration string ("1s", "24h").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
