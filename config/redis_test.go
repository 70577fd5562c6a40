package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// store.redis.* and node come from the file and the environment like every
// other key.
func TestRedisKeys(t *testing.T) {
	cfg := mustLoad(t, `
node: web-1
store:
  redis:
    url: redis://127.0.0.1:6379/0
    require: true
    key_prefix: dash
    pool_size: 4
    dial_timeout: 500ms
    read_timeout: 1s
    write_timeout: 3s
`)
	r := cfg.Store.Redis
	if cfg.Node != "web-1" || r.URL != "redis://127.0.0.1:6379/0" || !r.Require || r.KeyPrefix != "dash" || r.PoolSize != 4 ||
		r.DialTimeout.D() != 500*time.Millisecond || r.ReadTimeout.D() != time.Second || r.WriteTimeout.D() != 3*time.Second {
		t.Fatalf("from the file: node %q, redis %+v", cfg.Node, r)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg = mustLoad(t, "", "LIVEDASH_STORE_REDIS_URL=rediss://:pw@redis.example:6380/2", "LIVEDASH_NODE=web-2",
		"LIVEDASH_STORE_REDIS_REQUIRE=true", "LIVEDASH_STORE_REDIS_POOL_SIZE=20", "LIVEDASH_STORE_REDIS_DIAL_TIMEOUT=250ms")
	r = cfg.Store.Redis
	if cfg.Node != "web-2" || r.URL != "rediss://:pw@redis.example:6380/2" || !r.Require || r.PoolSize != 20 || r.DialTimeout.D() != 250*time.Millisecond {
		t.Fatalf("from the environment: node %q, redis %+v", cfg.Node, r)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if !cfg.SharedStore() || Default().SharedStore() {
		t.Fatal("SharedStore: a Redis URL shares the store, the default does not")
	}
}

// Misspelt keys and variables get a suggestion with the key's full path.
func TestRedisDidYouMean(t *testing.T) {
	_, err := Load(writeFile(t, "store:\n  redis:\n    pool_sise: 3\n"), nil)
	ps := problemsOf(t, err)
	if len(ps) != 1 || ps[0].Path != "store.redis.pool_sise" || !strings.Contains(ps[0].Reason, `did you mean "store.redis.pool_size"?`) {
		t.Fatalf("problems %v", ps)
	}
	_, err = Load("", []string{"LIVEDASH_STORE_REDIS_UR=redis://h"})
	ps = problemsOf(t, err)
	if len(ps) != 1 || !strings.Contains(ps[0].Reason, "did you mean LIVEDASH_STORE_REDIS_URL?") {
		t.Fatalf("problems %v", ps)
	}
}

// Every problem of store.redis and node has its key path; a URL is shown
// with its password redacted.
func TestValidateRedis(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		path   string // "" = valid
		reason string
	}{
		{"redis", func(c *Config) { c.Store.Redis.URL = "redis://127.0.0.1:6379/0" }, "", ""},
		{"rediss with user", func(c *Config) { c.Store.Redis.URL = "rediss://u:secret-pw@r.example:6380/15" }, "", ""},
		{"no port no db", func(c *Config) { c.Store.Redis.URL = "redis://r.example" }, "", ""},
		{"http", func(c *Config) { c.Store.Redis.URL = "http://:secret-pw@r.example" }, "store.redis.url", "redis://"},
		{"no scheme", func(c *Config) { c.Store.Redis.URL = "127.0.0.1:6379" }, "store.redis.url", "redis://"},
		{"no host", func(c *Config) { c.Store.Redis.URL = "redis:///0" }, "store.redis.url", "redis://"},
		{"query", func(c *Config) { c.Store.Redis.URL = "redis://:secret-pw@h:1/0?dial_timeout=1s" }, "store.redis.url", "no query"},
		{"bad port", func(c *Config) { c.Store.Redis.URL = "redis://h:0/0" }, "store.redis.url", "port"},
		{"bad db", func(c *Config) { c.Store.Redis.URL = "redis://:secret-pw@h:1/zero" }, "store.redis.url", "database number"},
		{"prefix empty", func(c *Config) { c.Store.Redis.KeyPrefix = "" }, "store.redis.key_prefix", "empty"},
		{"prefix braces", func(c *Config) { c.Store.Redis.KeyPrefix = "a{b}" }, "store.redis.key_prefix", "braces"},
		{"pool 0", func(c *Config) { c.Store.Redis.PoolSize = 0 }, "store.redis.pool_size", "at least 1"},
		{"dial timeout", func(c *Config) { c.Store.Redis.DialTimeout = 0 }, "store.redis.dial_timeout", "greater than 0"},
		{"read timeout", func(c *Config) { c.Store.Redis.ReadTimeout = 0 }, "store.redis.read_timeout", "greater than 0"},
		{"write timeout", func(c *Config) { c.Store.Redis.WriteTimeout = 0 }, "store.redis.write_timeout", "greater than 0"},
		{"node", func(c *Config) { c.Node = "web-1.example" }, "", ""},
		{"node control", func(c *Config) { c.Node = "a\nb" }, "node", "control"},
		{"node spaces", func(c *Config) { c.Node = " a" }, "node", "spaces"},
		{"node long", func(c *Config) { c.Node = strings.Repeat("n", 129) }, "node", "at most 128"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if tt.path == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			var perr *Errors
			if !errors.As(err, &perr) || len(perr.Problems) != 1 {
				t.Fatalf("Validate() = %v, want one problem", err)
			}
			if p := perr.Problems[0]; p.Path != tt.path || !strings.Contains(p.Reason, tt.reason) {
				t.Fatalf("problem %#v, want %s: …%s…", p, tt.path, tt.reason)
			}
			if strings.Contains(err.Error(), "secret-pw") {
				t.Fatalf("the password leaked: %v", err)
			}
		})
	}
}

// Redacted hides the password of the Redis URL (config check prints it).
func TestRedactedRedisURL(t *testing.T) {
	cfg := Default()
	cfg.Store.Redis.URL = "rediss://user:secret-pw@r.example:6380/1"
	out, err := yaml.Marshal(cfg.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "secret-pw") || !strings.Contains(string(out), "rediss://REDACTED@r.example:6380/1") {
		t.Fatalf("redacted:\n%s", out)
	}
	if cfg.Store.Redis.URL != "rediss://user:secret-pw@r.example:6380/1" {
		t.Fatal("Redacted changed its receiver")
	}
	if got := RedactURL("redis://h:1/0"); got != "redis://h:1/0" {
		t.Fatalf("RedactURL without a password = %q", got)
	}
	if got := RedactURL("redis://u:p@h:1/%zz"); strings.Contains(got, "p@") {
		t.Fatalf("RedactURL of an unparsable URL = %q", got)
	}
}

// node defaults to the host name.
func TestNodeName(t *testing.T) {
	cfg := Default()
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "livedash"
	}
	if cfg.Node != "" || cfg.NodeName() != host {
		t.Fatalf("default node %q → %q, want the host name %q", cfg.Node, cfg.NodeName(), host)
	}
	cfg.Node = "web-1"
	if cfg.NodeName() != "web-1" {
		t.Fatalf("NodeName() = %q", cfg.NodeName())
	}
}
