package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestDefaultIsValid(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "")
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if cfg.Listen != "127.0.0.1:7070" || cfg.Store.Path != "data/livedash.db" ||
		cfg.Store.Retention.Frames != 100_000 || cfg.Store.Retention.MaxAge.D() != 24*time.Hour {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
}

func TestDefaultStorePath(t *testing.T) {
	tests := []struct {
		name, xdg, want string
	}{
		{"unset", "", "data/livedash.db"},
		{"absolute", "/var/state", "/var/state/livedash/livedash.db"},
		{"relative is ignored per XDG spec", "state", "data/livedash.db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_STATE_HOME", tt.xdg)
			if got := Default().Store.Path; got != tt.want {
				t.Errorf("Default().Store.Path = %q, want %q", got, tt.want)
			}
			cfg, err := Load("", []string{"XDG_STATE_HOME=" + tt.xdg})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Store.Path != tt.want {
				t.Errorf("Load: Store.Path = %q, want %q", cfg.Store.Path, tt.want)
			}
		})
	}
}

func TestDurationText(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string // substring of the reason; "" = valid
	}{
		{"1s", time.Second, ""},
		{"1m30s", 90 * time.Second, ""},
		{"1.5s", 1500 * time.Millisecond, ""},
		{"0", 0, ""},
		{"0s", 0, ""},
		{" 2h ", 2 * time.Hour, ""},
		{"5", 0, "needs a unit"},
		{"1.5", 0, "needs a unit"},
		{"-1", 0, "needs a unit"},
		{"-1s", 0, "must not be negative"},
		{"", 0, "must be a duration"},
		{"soon", 0, "not a duration"},
		{"1 s", 0, "not a duration"},
		{"NaN", 0, "not a duration"},
		{"99999999999h", 0, "not a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d := Duration(42)
			err := d.UnmarshalText([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil || d.D() != tt.want {
					t.Fatalf("UnmarshalText(%q) = %v, %v; want %v", tt.in, d, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("UnmarshalText(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
			}
			if d != 42 {
				t.Errorf("value changed on error: %v", d)
			}
		})
	}
}

func TestDurationYAML(t *testing.T) {
	tests := []struct {
		doc     string
		want    time.Duration
		wantErr string
	}{
		{`d: 15s`, 15 * time.Second, ""},
		{`d: "250ms"`, 250 * time.Millisecond, ""},
		{`d: 0`, 0, ""},
		{`d: 5`, 0, "needs a unit"},
		{`d: 1.5`, 0, "needs a unit"},
		{`d: -3s`, 0, "must not be negative"},
		{`d: [1s]`, 0, "not a list or mapping"},
		{`d: {a: 1}`, 0, "not a list or mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.doc, func(t *testing.T) {
			var v struct {
				D Duration `yaml:"d"`
			}
			err := yaml.Unmarshal([]byte(tt.doc), &v)
			if tt.wantErr == "" {
				if err != nil || v.D.D() != tt.want {
					t.Fatalf("got %v, %v; want %v", v.D, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestDurationStringRoundTrip(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{24 * time.Hour, "24h"},
		{90 * time.Second, "1m30s"},
		{2 * time.Minute, "2m"},
		{time.Hour + 30*time.Second, "1h0m30s"},
		{1500 * time.Millisecond, "1.5s"},
		{100 * time.Millisecond, "100ms"},
		{time.Hour + time.Nanosecond, "1h0m0.000000001s"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			d := Duration(tt.d)
			if got := d.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			out, err := yaml.Marshal(struct{ D Duration }{d})
			if err != nil {
				t.Fatal(err)
			}
			var back struct{ D Duration }
			if err := yaml.Unmarshal(out, &back); err != nil || back.D != d {
				t.Errorf("YAML round trip of %v via %q = %v, %v", d, out, back.D, err)
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	cfg := Default()
	cfg.Push.Token = "s3cret"
	out, err := yaml.Marshal(cfg.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cret") {
		t.Errorf("Redacted config leaks the token:\n%s", out)
	}
	if cfg.Push.Token != "s3cret" {
		t.Error("Redacted changed its receiver")
	}
	if got := Default().Redacted().Push.Token; got != "" {
		t.Errorf("empty token redacted to %q; empty must stay empty (push disabled)", got)
	}
}

// Target URLs carry credentials in their user info and tokens in their
// query: config check prints neither.
func TestRedactedTargets(t *testing.T) {
	cfg := Default()
	cfg.Collectors.HTTP.Targets = []HTTPTarget{{URL: "https://admin:pw-http-1@probe.example/health?token=tok-http-2&x=1"}}
	cfg.Collectors.Prometheus.Targets = []ScrapeTarget{{URL: "http://scraper:pw-scrape-3@exp.example:9100/metrics?auth=tok-scrape-4#frag-5"}}
	out, err := yaml.Marshal(cfg.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"admin", "pw-http-1", "tok-http-2", "scraper", "pw-scrape-3", "tok-scrape-4", "frag-5"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("Redacted config holds %q:\n%s", secret, out)
		}
	}
	for _, kept := range []string{"https://REDACTED@probe.example/health?token=REDACTED&x=REDACTED", "http://REDACTED@exp.example:9100/metrics?auth=REDACTED"} {
		if !strings.Contains(string(out), kept) {
			t.Errorf("Redacted config lacks %q:\n%s", kept, out)
		}
	}
	if cfg.Collectors.HTTP.Targets[0].URL != "https://admin:pw-http-1@probe.example/health?token=tok-http-2&x=1" {
		t.Error("Redacted changed its receiver's targets")
	}
	for in, want := range map[string]string{
		"http://host/metrics":          "http://host/metrics",
		"http://u@host/":               "http://REDACTED@host/",
		"http://host/?a=1&a=2":         "http://host/?a=REDACTED&a=REDACTED",
		"http://[::1]:9/x?k=v":         "http://[::1]:9/x?k=REDACTED",
		"::not a url":                  "REDACTED",
		"ftp://user:secret@host/file?": "ftp://REDACTED@host/file",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// A validation problem about a target URL shows it redacted.
func TestValidateRedactsURL(t *testing.T) {
	cfg := Default()
	cfg.Collectors.Prometheus.Targets = []ScrapeTarget{{URL: "gopher://user:pw-6@host/?token=tok-7"}}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "collectors.prometheus.targets[0].url") {
		t.Fatalf("Validate() = %v, want a problem with the URL", err)
	}
	if strings.Contains(err.Error(), "pw-6") || strings.Contains(err.Error(), "tok-7") {
		t.Errorf("the problem shows a secret: %v", err)
	}
}

// TestExampleFile keeps livedash.example.yaml honest: it loads, validates,
// names every key outside collectors, and agrees with Default on each.
func TestExampleFile(t *testing.T) {
	const example = "livedash.example.yaml"
	cfg, err := Load(example, nil)
	if err != nil {
		t.Fatalf("Load(%s): %v", example, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("example does not validate:\n%v", err)
	}

	def := defaults(func(string) string { return "" })
	cfg.Collectors, def.Collectors = Collectors{}, Collectors{}
	if got, want := marshal(t, cfg), marshal(t, def); got != want {
		t.Errorf("example and Default() differ:\nexample:\n%s\nDefault():\n%s", got, want)
	}

	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	inFile := make(map[string]bool)
	collectKeyPaths(doc.Content[0], "", inFile)
	keys, err := envKeys()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.HasPrefix(k.path, "collectors.") {
			continue
		}
		if !inFile[k.path] {
			t.Errorf("%s does not document %s", example, k.path)
		}
	}
	root := doc.Content[0]
	if last := root.Content[len(root.Content)-2].Value; last != "collectors" {
		t.Errorf("last top-level key of %s is %q, want collectors", example, last)
	}
}

// TestExampleCollectors: the collectors section of livedash.example.yaml
// states Default()'s collector values, so the file and the code cannot
// disagree about a default.
func TestExampleCollectors(t *testing.T) {
	cfg, err := Load("livedash.example.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	def := defaults(func(string) string { return "" })
	if got, want := marshal(t, cfg.Collectors), marshal(t, def.Collectors); got != want {
		t.Errorf("example collectors and Default() differ:\nexample:\n%s\nDefault():\n%s", got, want)
	}
}

func collectKeyPaths(n *yaml.Node, path string, out map[string]bool) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		p := joinPath(path, n.Content[i].Value)
		out[p] = true
		collectKeyPaths(n.Content[i+1], p, out)
	}
}

func marshal(tb testing.TB, v any) string {
	tb.Helper()
	out, err := yaml.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(out)
}

// writeFile writes a config file into a fresh temporary directory.
func writeFile(tb testing.TB, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "livedash.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
