package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		path   string // "" = valid
		reason string // substring
	}{
		{"defaults", func(c *Config) {}, "", ""},
		{"listen any interface", func(c *Config) { c.Listen = ":7070" }, "", ""},
		{"listen port 0", func(c *Config) { c.Listen = "127.0.0.1:0" }, "", ""},
		{"listen ipv6", func(c *Config) { c.Listen = "[::1]:7070" }, "", ""},
		{"listen no port", func(c *Config) { c.Listen = "localhost" }, "listen", "host:port"},
		{"listen bad port", func(c *Config) { c.Listen = "localhost:http" }, "listen", "port must be a number"},
		{"listen port too big", func(c *Config) { c.Listen = ":65536" }, "listen", "port must be a number"},
		{"listen empty", func(c *Config) { c.Listen = "" }, "listen", "host:port"},
		{"log format", func(c *Config) { c.LogFormat = "xml" }, "log_format", "text, json"},
		{"log level", func(c *Config) { c.LogLevel = "verbose" }, "log_level", "debug, info, warn, error"},
		{"store path", func(c *Config) { c.Store.Path = " " }, "store.path", "must not be empty"},
		{"frames 0", func(c *Config) { c.Store.Retention.Frames = 0 }, "store.retention.frames", "at least 1"},
		{"frames max", func(c *Config) { c.Store.Retention.Frames = 100_000_000 }, "", ""},
		{"frames over max", func(c *Config) { c.Store.Retention.Frames = 100_000_001 }, "store.retention.frames", "at most 100000000"},
		{"max_age 0 = no limit", func(c *Config) { c.Store.Retention.MaxAge = 0 }, "", ""},
		{"max_age tiny", func(c *Config) { c.Store.Retention.MaxAge = Duration(time.Millisecond) }, "store.retention.max_age", "at least 1s"},
		{"lock timeout 0", func(c *Config) { c.Store.LockTimeout = 0 }, "store.lock_timeout", "greater than 0"},
		{"max size negative", func(c *Config) { c.Store.MaxSizeBytes = -1 }, "store.max_size_bytes", "negative"},
		{"read header timeout", func(c *Config) { c.HTTP.ReadHeaderTimeout = 0 }, "http.read_header_timeout", "greater than 0"},
		{"read timeout", func(c *Config) { c.HTTP.ReadTimeout = -1 }, "http.read_timeout", "greater than 0"},
		{"idle timeout", func(c *Config) { c.HTTP.IdleTimeout = 0 }, "http.idle_timeout", "greater than 0"},
		{"header bytes", func(c *Config) { c.HTTP.MaxHeaderBytes = 1023 }, "http.max_header_bytes", "at least 1024"},
		{"max conns", func(c *Config) { c.HTTP.MaxConns = 0 }, "http.max_conns", "at least 1"},
		{"cors exact origins", func(c *Config) {
			c.HTTP.CORSOrigins = []string{"https://dash.example.com", "http://localhost:3000", "http://[::1]:8080"}
		}, "", ""},
		{"cors star alone", func(c *Config) { c.HTTP.CORSOrigins = []string{"*"} }, "", ""},
		{"cors star with others", func(c *Config) { c.HTTP.CORSOrigins = []string{"https://a.example", "*"} }, "http.cors_origins[1]", "only origin"},
		{"cors trailing slash", func(c *Config) { c.HTTP.CORSOrigins = []string{"https://a.example/"} }, "http.cors_origins[0]", "without user, path"},
		{"cors path", func(c *Config) { c.HTTP.CORSOrigins = []string{"https://a.example/app"} }, "http.cors_origins[0]", "without user, path"},
		{"cors query", func(c *Config) { c.HTTP.CORSOrigins = []string{"https://a.example?x"} }, "http.cors_origins[0]", "without user, path"},
		{"cors no scheme", func(c *Config) { c.HTTP.CORSOrigins = []string{"a.example"} }, "http.cors_origins[0]", "absolute http or https"},
		{"cors ftp", func(c *Config) { c.HTTP.CORSOrigins = []string{"ftp://a.example"} }, "http.cors_origins[0]", "absolute http or https"},
		{"cors upper case", func(c *Config) { c.HTTP.CORSOrigins = []string{"https://A.example"} }, "http.cors_origins[0]", "lower case"},
		{"cors default port", func(c *Config) { c.HTTP.CORSOrigins = []string{"https://a.example:443"} }, "http.cors_origins[0]", "default port"},
		{"cors bad port", func(c *Config) { c.HTTP.CORSOrigins = []string{"https://a.example:0"} }, "http.cors_origins[0]", "port must be"},
		{"queue size", func(c *Config) { c.Stream.QueueSize = 0 }, "stream.queue_size", "at least 1"},
		{"write timeout", func(c *Config) { c.Stream.WriteTimeout = 0 }, "stream.write_timeout", "greater than 0"},
		{"heartbeat low", func(c *Config) { c.Stream.Heartbeat = Duration(999 * time.Millisecond) }, "stream.heartbeat", "between 1s and 55s"},
		{"heartbeat 55s", func(c *Config) { c.Stream.Heartbeat = Duration(55 * time.Second) }, "", ""},
		{"heartbeat high", func(c *Config) { c.Stream.Heartbeat = Duration(56 * time.Second) }, "stream.heartbeat", "between 1s and 55s"},
		{"retry", func(c *Config) { c.Stream.Retry = Duration(99 * time.Millisecond) }, "stream.retry", "at least 100ms"},
		{"max streams 0", func(c *Config) { c.Stream.MaxStreams, c.Stream.MaxStreamsPerIP = 0, 0 }, "", ""},
		{"max streams", func(c *Config) { c.Stream.MaxStreams = -1 }, "stream.max_streams", "negative"},
		{"streams could fill the listener", func(c *Config) { c.HTTP.MaxConns = 5000; c.Stream.MaxStreams = 4950 }, "stream.max_streams", "http.max_conns"},
		{"max streams per ip", func(c *Config) { c.Stream.MaxStreamsPerIP = -1 }, "stream.max_streams_per_ip", "negative"},
		{"replay frames", func(c *Config) { c.Stream.ReplayMaxFrames = 0 }, "stream.replay_max_frames", "at least 1"},
		{"replay bytes", func(c *Config) { c.Stream.ReplayMaxBytes = 0 }, "stream.replay_max_bytes", "at least 1"},
		{"drain 0", func(c *Config) { c.Stream.DrainWindow = 0 }, "", ""},
		{"drain negative", func(c *Config) { c.Stream.DrainWindow = -1 }, "stream.drain_window", "negative"},
		{"lifetime negative", func(c *Config) { c.Stream.MaxLifetime = -1 }, "stream.max_lifetime", "negative"},
		{"default over max", func(c *Config) { c.API.DefaultLimit = 1001 }, "api.default_limit", "must not exceed api.max_limit (1000)"},
		{"default limit 0", func(c *Config) { c.API.DefaultLimit = 0 }, "api.default_limit", "at least 1"},
		{"max limit", func(c *Config) { c.API.MaxLimit = 10_001 }, "api.max_limit", "at most 10000"},
		{"max wait 5m", func(c *Config) { c.API.MaxWait = Duration(5 * time.Minute) }, "", ""},
		{"max wait", func(c *Config) { c.API.MaxWait = Duration(5*time.Minute + 1) }, "api.max_wait", "between 0 and 5m"},
		{"query points", func(c *Config) { c.API.QueryMaxPoints = 0 }, "api.query_max_points", "at least 1"},
		{"query frames", func(c *Config) { c.API.QueryMaxFrames = 0 }, "api.query_max_frames", "at least 1"},
		{"push body small", func(c *Config) { c.Push.MaxBodyBytes = 1023 }, "push.max_body_bytes", "between 1024"},
		{"push body big", func(c *Config) { c.Push.MaxBodyBytes = 64<<20 + 1 }, "push.max_body_bytes", "between 1024"},
		{"push samples", func(c *Config) { c.Push.MaxSamples = 0 }, "push.max_samples", "at least 1"},
		{"push token", func(c *Config) { c.Push.Token = "abcdefgh ijklmnop" }, "push.token", "spaces"},
		{"push token short", func(c *Config) { c.Push.Token = "Zq" }, "push.token", "at least 16 bytes"},
		{"push token 15 bytes", func(c *Config) { c.Push.Token = "0123456789abcde" }, "push.token", "at least 16 bytes"},
		{"push token 16 bytes", func(c *Config) { c.Push.Token = "0123456789abcdef" }, "", ""},
		{"push labels", func(c *Config) { c.Push.MaxLabels = 0 }, "push.max_labels", "at least 1"},
		{"push label value", func(c *Config) { c.Push.MaxLabelValueBytes = 0 }, "push.max_label_value_bytes", "at least 1"},
		{"push series", func(c *Config) { c.Push.MaxSeriesPerTopic = 0 }, "push.max_series_per_topic", "at least 1"},
		{"push topics", func(c *Config) { c.Push.MaxTopics = 0 }, "push.max_topics", "at least 1"},
		{"hosts", func(c *Config) {
			c.HTTP.AllowedHosts = []string{"dash.example.com", ".example.org", "[::1]", "10.0.0.1"}
		}, "", ""},
		{"host with port", func(c *Config) { c.HTTP.AllowedHosts = []string{"dash.example.com:443"} }, "http.allowed_hosts[0]", "without scheme, port"},
		{"host with scheme", func(c *Config) { c.HTTP.AllowedHosts = []string{"https://dash.example.com"} }, "http.allowed_hosts[0]", "without scheme"},
		{"host star among others", func(c *Config) { c.HTTP.AllowedHosts = []string{"*", "a"} }, "http.allowed_hosts[0]", "only entry"},
		{"bad ipv6 host", func(c *Config) { c.HTTP.AllowedHosts = []string{"[zz]"} }, "http.allowed_hosts[0]", "IPv6"},
		{"proxies", func(c *Config) { c.HTTP.TrustedProxies = []string{"127.0.0.1", "10.0.0.0/8", "fd00::/8"} }, "", ""},
		{"bad proxy", func(c *Config) { c.HTTP.TrustedProxies = []string{"10.0.0.0/33"} }, "http.trusted_proxies[0]", "CIDR"},
		{"conns per client", func(c *Config) { c.HTTP.MaxConnsPerClient = 7501 }, "http.max_conns_per_client", "half of http.max_conns"},
		{"conns per client 0", func(c *Config) { c.HTTP.MaxConnsPerClient = 0 }, "", ""},
		{"polls per client", func(c *Config) { c.HTTP.MaxPollsPerClient = -1 }, "http.max_polls_per_client", "negative"},
		{"api rate", func(c *Config) { c.HTTP.APIRate = -1 }, "http.api_rate", "0 or more"},
		{"api burst", func(c *Config) { c.HTTP.APIBurst = 0 }, "http.api_burst", "at least 1"},
		{"api rate off", func(c *Config) { c.HTTP.APIRate, c.HTTP.APIBurst = 0, 0 }, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if tt.path == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var perr *Errors
			if !errors.As(err, &perr) || len(perr.Problems) != 1 {
				t.Fatalf("Validate() = %v, want exactly one problem", err)
			}
			p := perr.Problems[0]
			if p.Path != tt.path || !strings.Contains(p.Reason, tt.reason) {
				t.Errorf("problem = %#v, want path %q and a reason containing %q", p, tt.path, tt.reason)
			}
			if tt.path == "push.token" && strings.Contains(err.Error(), cfg.Push.Token) {
				t.Errorf("the token leaked into the error: %v", err)
			}
		})
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	cfg := Default()
	cfg.Listen = "nope"
	cfg.Store.Retention.Frames = -5
	cfg.Stream.Heartbeat = Duration(time.Minute)
	cfg.API.MaxLimit = 20_000
	cfg.HTTP.CORSOrigins = []string{"*", "https://a.example/"}
	err := cfg.Validate()
	var perr *Errors
	if !errors.As(err, &perr) {
		t.Fatalf("Validate() = %v, want *Errors", err)
	}
	want := []string{"listen", "store.retention.frames", "http.cors_origins[0]", "http.cors_origins[1]",
		"stream.heartbeat", "api.max_limit"}
	if got := paths(perr.Problems); !slices.Equal(got, want) {
		t.Errorf("paths = %v, want %v", got, want)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("Error() has %d lines, want %d:\n%v", len(lines), len(want), err)
	}
	if lines[1] != `store.retention.frames = "-5": must be at least 1` {
		t.Errorf("line = %q", lines[1])
	}
	if lines[4] != `stream.heartbeat = "1m": must be between 1s and 55s (idle proxies cut connections at about 60s)` {
		t.Errorf("line = %q", lines[4])
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{"a.b", "x", "bad"}, `a.b = "x": bad`},
		{Problem{"a.b", "", "bad"}, `a.b: bad`},
		{Problem{"", "", "bad"}, `bad`},
		{Problem{"", "x", "bad"}, `"x": bad`},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestFormatValue(t *testing.T) {
	tru := true
	var nilBool *bool
	tests := []struct {
		v    any
		want string
	}{
		{nil, ""},
		{&tru, "true"},
		{nilBool, ""},
		{Duration(90 * time.Second), "1m30s"},
		{int64(7), "7"},
		{[]string{"a", "b"}, "a,b"},
	}
	for _, tt := range tests {
		if got := formatValue(tt.v); got != tt.want {
			t.Errorf("formatValue(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}
