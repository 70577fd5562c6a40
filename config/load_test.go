package config

import (
	"errors"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// problemsOf returns the problems of every *Errors in err's tree, in order.
func problemsOf(tb testing.TB, err error) []Problem {
	tb.Helper()
	var out []Problem
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *Errors:
			out = append(out, e.Problems...)
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		default:
			tb.Fatalf("error without problems: %v", err)
		}
	}
	walk(err)
	return out
}

func paths(ps []Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Path
	}
	return out
}

func mustLoad(tb testing.TB, content string, environ ...string) Config {
	tb.Helper()
	path := ""
	if content != "" {
		path = writeFile(tb, content)
	}
	cfg, err := Load(path, environ)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return cfg
}

func TestLoadNothingIsDefault(t *testing.T) {
	cfg := mustLoad(t, "")
	if want := defaults(func(string) string { return "" }); !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load(\"\", nil) = %+v, want %+v", cfg, want)
	}
	for _, doc := range []string{"# only a comment\n", "---\n", "collectors:\n", "{}\n"} {
		if cfg := mustLoad(t, doc); !reflect.DeepEqual(cfg, defaults(func(string) string { return "" })) {
			t.Errorf("%q changed the config: %+v", doc, cfg)
		}
	}
}

func TestLoadFileOverrides(t *testing.T) {
	cfg := mustLoad(t, `
listen: ":9000"
log_format: json
store:
  path: /tmp/x.db
  retention:
    frames: 500
    max_age: 1h30m
  no_sync: true
http:
  cors_origins: [https://a.example, "http://localhost:3000"]
stream:
  heartbeat: 20s
push:
  max_body_bytes: 2048
`)
	def := Default()
	want := def
	want.Listen = ":9000"
	want.LogFormat = "json"
	want.Store.Path = "/tmp/x.db"
	want.Store.Retention.Frames = 500
	want.Store.Retention.MaxAge = Duration(90 * time.Minute)
	want.Store.NoSync = true
	want.HTTP.CORSOrigins = []string{"https://a.example", "http://localhost:3000"}
	want.Stream.Heartbeat = Duration(20 * time.Second)
	want.Push.MaxBodyBytes = 2048
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

func TestLoadEnvOverridesFile(t *testing.T) {
	cfg := mustLoad(t, `
listen: ":9000"
store:
  retention:
    frames: 500
    max_age: 1h
`,
		"PATH=/usr/bin",
		"LIVEDASH_LISTEN=127.0.0.1:0",
		"LIVEDASH_STORE_RETENTION_MAX_AGE=10m",
		"LIVEDASH_STORE_NO_SYNC=true",
		"LIVEDASH_HTTP_CORS_ORIGINS= https://a.example , ,https://b.example",
		"LIVEDASH_PUSH_MAX_BODY_BYTES=4096",
		"LIVEDASH_PUSH_TOKEN=tok=en", // the value may hold "="
		"LIVEDASH_STREAM_HEARTBEAT=5s",
		"LIVEDASH_STREAM_HEARTBEAT=6s", // last one wins, as in a process environment
	)
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", cfg.Listen, "127.0.0.1:0"},
		{"frames (file only)", cfg.Store.Retention.Frames, 500},
		{"max_age", cfg.Store.Retention.MaxAge, Duration(10 * time.Minute)},
		{"no_sync", cfg.Store.NoSync, true},
		{"cors_origins", cfg.HTTP.CORSOrigins, []string{"https://a.example", "https://b.example"}},
		{"max_body_bytes", cfg.Push.MaxBodyBytes, int64(4096)},
		{"token", cfg.Push.Token, "tok=en"},
		{"heartbeat", cfg.Stream.Heartbeat, Duration(6 * time.Second)},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestLoadEnvCollectors(t *testing.T) {
	keys, err := envKeys()
	if err != nil {
		t.Fatal(err)
	}
	// Whatever the collectors section holds, its keys follow the same rule.
	for _, name := range collectorLeafEnvNames(t) {
		if _, ok := keys[name]; !ok {
			t.Errorf("no environment variable %s", name)
		}
	}
	if k, ok := keys["LIVEDASH_STORE_RETENTION_MAX_AGE"]; !ok || k.path != "store.retention.max_age" {
		t.Errorf("LIVEDASH_STORE_RETENTION_MAX_AGE → %+v, %v", k, ok)
	}
}

// TestLoadCollectorCommonKeys: the keys a section takes from the embedded
// Common are set from the file and the environment like its own keys, and a
// misspelt one gets a hint with its full key path.
func TestLoadCollectorCommonKeys(t *testing.T) {
	cfg := mustLoad(t, `
collectors:
  cpu:
    enabled: false
    interval: 2s
    per_cpu: false
  prometheus:
    timeout: 1s
`, "LIVEDASH_COLLECTORS_DISK_INTERVAL=3s", "LIVEDASH_COLLECTORS_SYNTHETIC_ENABLED=true")
	c := cfg.Collectors
	if c.CPU.Enabled == nil || *c.CPU.Enabled || c.CPU.Interval.D() != 2*time.Second || c.CPU.PerCPU {
		t.Errorf("cpu = %+v", c.CPU)
	}
	if c.Prometheus.Timeout.D() != time.Second || c.Prometheus.Interval.D() != 5*time.Second {
		t.Errorf("prometheus = %+v", c.Prometheus.Common)
	}
	if c.Disk.Interval.D() != 3*time.Second || c.Disk.DeviceExclude != DefaultDiskDeviceExclude {
		t.Errorf("disk = %+v", c.Disk)
	}
	if c.Synthetic.Enabled == nil || !*c.Synthetic.Enabled {
		t.Errorf("synthetic.enabled = %v", c.Synthetic.Enabled)
	}

	_, err := Load(writeFile(t, "collectors:\n  network:\n    intervall: 1s\n"), nil)
	want := []Problem{{Path: "collectors.network.intervall", Reason: `unknown key (line 3); did you mean "collectors.network.interval"?`}}
	if got := problemsOf(t, err); !slices.Equal(got, want) {
		t.Errorf("problems = %#v\nwant %#v", got, want)
	}
}

// collectorLeafEnvNames lists the expected variable of every settable leaf
// under Collectors, found independently of envKeysFor.
func collectorLeafEnvNames(tb testing.TB) []string {
	tb.Helper()
	var out []string
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for f := range t.Fields() {
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" && opts == "inline" {
				walk(f.Type, path) // an embedded Common: its keys are the section's
				continue
			}
			if name == "" || name == "-" {
				continue
			}
			p := path + "." + name
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, p)
				continue
			}
			out = append(out, "LIVEDASH_"+strings.ToUpper(strings.ReplaceAll(p, ".", "_")))
		}
	}
	walk(reflect.TypeFor[Collectors](), "collectors")
	return out
}

// kinds covers every field type the environment rule must handle, including
// ones Config does not use yet.
type kinds struct {
	S      string            `yaml:"s"`
	B      bool              `yaml:"b"`
	PB     *bool             `yaml:"pb"`
	I      int               `yaml:"i"`
	I64    int64             `yaml:"i64"`
	U8     uint8             `yaml:"u8"`
	F      float64           `yaml:"f"`
	D      Duration          `yaml:"d"`
	L      []string          `yaml:"l"`
	Nested struct{ X int }   `yaml:"nested"`
	Inline inlined           `yaml:",inline"`
	Items  []struct{ Y int } `yaml:"items"`
	M      map[string]int    `yaml:"m"`
	Skip   int               `yaml:"-"`
	NoTag  int
}

type inlined struct {
	Lifted string `yaml:"lifted"`
}

func TestEnvKinds(t *testing.T) {
	keys, err := envKeysFor(reflect.TypeFor[kinds]())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range keys {
		names = append(names, name)
	}
	slices.Sort(names)
	want := []string{"LIVEDASH_B", "LIVEDASH_D", "LIVEDASH_F", "LIVEDASH_I", "LIVEDASH_I64", "LIVEDASH_ITEMS",
		"LIVEDASH_L", "LIVEDASH_LIFTED", "LIVEDASH_M", "LIVEDASH_NESTED_X", "LIVEDASH_NOTAG", "LIVEDASH_PB",
		"LIVEDASH_S", "LIVEDASH_U8"}
	if !slices.Equal(names, want) {
		t.Fatalf("names = %v\nwant    %v", names, want)
	}

	tests := []struct {
		env     string
		check   func(k kinds) bool
		wantErr string
	}{
		{"LIVEDASH_S=hello world", func(k kinds) bool { return k.S == "hello world" }, ""},
		{"LIVEDASH_B=true", func(k kinds) bool { return k.B }, ""},
		{"LIVEDASH_B=yes", nil, "true or false"},
		{"LIVEDASH_PB=false", func(k kinds) bool { return k.PB != nil && !*k.PB }, ""},
		{"LIVEDASH_PB=maybe", nil, "true or false"},
		{"LIVEDASH_I=-7", func(k kinds) bool { return k.I == -7 }, ""},
		{"LIVEDASH_I=7x", nil, "whole number"},
		{"LIVEDASH_I64=9223372036854775807", func(k kinds) bool { return k.I64 == 1<<63-1 }, ""},
		{"LIVEDASH_I64=9223372036854775808", nil, "whole number"},
		{"LIVEDASH_U8=256", nil, "whole number"},
		{"LIVEDASH_F=0.25", func(k kinds) bool { return k.F == 0.25 }, ""},
		{"LIVEDASH_F=NaN", nil, "a number"},
		{"LIVEDASH_D=1m", func(k kinds) bool { return k.D.D() == time.Minute }, ""},
		{"LIVEDASH_D=60", nil, "needs a unit"},
		{"LIVEDASH_L=a,b", func(k kinds) bool { return slices.Equal(k.L, []string{"a", "b"}) }, ""},
		{"LIVEDASH_L=", func(k kinds) bool { return k.L == nil }, ""},
		{"LIVEDASH_NESTED_X=3", func(k kinds) bool { return k.Nested.X == 3 }, ""},
		{"LIVEDASH_LIFTED=up", func(k kinds) bool { return k.Inline.Lifted == "up" }, ""},
		{"LIVEDASH_NOTAG=4", func(k kinds) bool { return k.NoTag == 4 }, ""},
		{"LIVEDASH_ITEMS=1", nil, "config file only"},
		{"LIVEDASH_M=a", nil, "config file only"},
		{"LIVEDASH_SKIP=1", nil, "unknown environment variable"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			var k kinds
			k.L = []string{"default"}
			ps := applyEnvTo(reflect.ValueOf(&k).Elem(), keys, []string{tt.env}, nil)
			if tt.wantErr != "" {
				if len(ps) != 1 || !strings.Contains(ps[0].Reason, tt.wantErr) {
					t.Fatalf("problems = %v, want one containing %q", ps, tt.wantErr)
				}
				return
			}
			if len(ps) != 0 {
				t.Fatalf("problems = %v", ps)
			}
			if !tt.check(k) {
				t.Errorf("value not applied: %+v", k)
			}
		})
	}
}

func TestEnvNameCollision(t *testing.T) {
	type clash struct {
		A struct {
			B int `yaml:"b_c"`
		} `yaml:"a"`
		AB struct {
			C int `yaml:"c"`
		} `yaml:"a_b"`
	}
	if _, err := envKeysFor(reflect.TypeFor[clash]()); err == nil || !strings.Contains(err.Error(), "LIVEDASH_A_B_C") {
		t.Errorf("err = %v, want a collision on LIVEDASH_A_B_C", err)
	}
	if _, err := envKeys(); err != nil {
		t.Errorf("Config has colliding environment names: %v", err)
	}
}

func TestLoadUnknownEnv(t *testing.T) {
	_, err := Load("", []string{
		"LIVEDASH_LISTN=:1",
		"LIVEDASH_STORE=x", // a section, not a key
		"LIVEDASH_LISTEN=:2",
		"livedash_listen=:3", // not our prefix: names are case-sensitive
		"HOME=/root",
	})
	ps := problemsOf(t, err)
	if got, want := paths(ps), []string{"LIVEDASH_LISTN", "LIVEDASH_STORE"}; !slices.Equal(got, want) {
		t.Fatalf("problem paths = %v, want %v (%v)", got, want, err)
	}
	if !strings.Contains(ps[0].Reason, "did you mean LIVEDASH_LISTEN?") {
		t.Errorf("no suggestion: %q", ps[0].Reason)
	}
}

func TestLoadBadEnvValues(t *testing.T) {
	cfg, err := Load("", []string{
		"LIVEDASH_STORE_RETENTION_FRAMES=lots",
		"LIVEDASH_STORE_LOCK_TIMEOUT=5",
		"LIVEDASH_LISTEN=:8080",
	})
	ps := problemsOf(t, err)
	want := []Problem{
		{"LIVEDASH_STORE_LOCK_TIMEOUT", "5", `needs a unit (ns, us, ms, s, m, h), e.g. "5s" (store.lock_timeout)`},
		{"LIVEDASH_STORE_RETENTION_FRAMES", "lots", "must be a whole number in range (store.retention.frames)"},
	}
	if !slices.Equal(ps, want) {
		t.Fatalf("problems = %#v\nwant %#v", ps, want)
	}
	if cfg.Listen != ":8080" || cfg.Store.Retention.Frames != 100_000 {
		t.Errorf("good values must apply and bad ones keep their default: %+v", cfg)
	}
}

func TestLoadFileProblems(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []Problem
	}{
		{
			name: "unknown key with suggestion",
			doc:  "store:\n  retention:\n    frame: 10\n",
			want: []Problem{{Path: "store.retention.frame", Reason: `unknown key (line 3); did you mean "store.retention.frames"?`}},
		},
		{
			name: "unknown top-level key",
			doc:  "listen: :1\nzzz: 1\n",
			want: []Problem{{Path: "zzz", Reason: "unknown key (line 2)"}},
		},
		{
			name: "unknown key in collectors",
			doc:  "collectors:\n  no_such_collector_xyz:\n    enabled: true\n",
			want: []Problem{{Path: "collectors.no_such_collector_xyz", Reason: "unknown key (line 2)"}},
		},
		{
			name: "wrong types",
			doc:  "store:\n  retention:\n    frames: many\n  no_sync: perhaps\nhttp:\n  cors_origins: https://a.example\n",
			want: []Problem{
				{"store.retention.frames", "many", "must be a whole number in range (line 3)"},
				{"store.no_sync", "perhaps", "must be true or false (line 4)"},
				{"http.cors_origins", "https://a.example", "must be a list of strings (line 6)"},
			},
		},
		{
			name: "bad durations",
			doc:  "stream:\n  heartbeat: 15\n  retry: -1s\n  write_timeout: later\n",
			want: []Problem{
				{"stream.heartbeat", "15", `needs a unit (ns, us, ms, s, m, h), e.g. "15s" (line 2)`},
				{"stream.retry", "-1s", "must not be negative (line 3)"},
				{"stream.write_timeout", "later", `not a duration; write it like "500ms", "30s" or "1m30s" (line 4)`},
			},
		},
		{
			name: "section given a scalar",
			doc:  "store: data.db\n",
			want: []Problem{{"store", "data.db", "must be a mapping of keys (line 1)"}},
		},
		{
			name: "string given a mapping",
			doc:  "listen:\n  host: x\n",
			want: []Problem{{"listen", "", "must be a single value, not a list or mapping (line 2)"}},
		},
		{
			name: "duplicate key",
			doc:  "listen: :1\nlisten: :2\n",
			want: []Problem{{Path: "listen", Reason: "key given twice (lines 1 and 2)"}},
		},
		{
			name: "syntax error",
			doc:  "listen: [\n",
			want: []Problem{{Reason: "invalid YAML: line 1: did not find expected node content"}},
		},
		{
			name: "top level is a list",
			doc:  "- listen\n",
			want: []Problem{{Reason: `the top level must be a mapping of keys such as "listen:" (line 1)`}},
		},
		{
			name: "two documents",
			doc:  "listen: :1\n---\nlisten: :2\n",
			want: []Problem{{Reason: "a config file holds one YAML document; another starts at line 2"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tt.doc), nil)
			if got := problemsOf(t, err); !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n%#v\nwant:\n%#v", got, tt.want)
			}
		})
	}
}

func TestLoadAliasesAndMerge(t *testing.T) {
	cfg := mustLoad(t, `
stream:
  heartbeat: &hb 20s
api:
  max_wait: *hb
store:
  retention:
    <<: {frames: 10, max_age: 2h}
    max_age: 1h
`)
	if cfg.API.MaxWait.D() != 20*time.Second {
		t.Errorf("alias not followed: api.max_wait = %v", cfg.API.MaxWait)
	}
	if r := cfg.Store.Retention; r.Frames != 10 || r.MaxAge.D() != time.Hour {
		t.Errorf("merge: retention = %+v, want frames 10 and max_age 1h", r)
	}
}

func TestLoadAliasBomb(t *testing.T) {
	doc := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for c := 'b'; c <= 'k'; c++ {
		prev := string(c - 1)
		doc += string(c) + ": &" + string(c) + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev +
			", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
	}
	doc += "http:\n  cors_origins: *k\n"
	_, err := Load(writeFile(t, doc), nil)
	if err == nil {
		t.Fatal("a billion-laughs document loaded without error")
	}
}

func TestLoadReadErrors(t *testing.T) {
	cfg, err := Load(t.TempDir()+"/missing.yaml", []string{"LIVEDASH_LISTEN=:1", "LIVEDASH_NOPE=1"})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
	var perr *Errors
	if !errors.As(err, &perr) || len(perr.Problems) != 1 || perr.Problems[0].Path != "LIVEDASH_NOPE" {
		t.Errorf("environment problems must still be reported: %v", err)
	}
	if cfg.Listen != ":1" {
		t.Errorf("environment not applied after a read error: listen = %q", cfg.Listen)
	}

	big := writeFile(t, "# "+strings.Repeat("x", maxFileBytes)+"\n")
	if _, err := Load(big, nil); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: err = %v", err)
	}
}

// TestThreeMistakes: a file with a misspelt section, a duration without a
// unit and a value below its minimum yields all three problems, each on its
// own line with its key path, the parse problems and the validation problem
// together, so that one run shows a user everything to fix.
func TestThreeMistakes(t *testing.T) {
	cfg, loadErr := Load("testdata/three-mistakes.yaml", nil)
	err := errors.Join(loadErr, cfg.Validate())
	ps := problemsOf(t, err)
	want := []string{"stor", "stream.heartbeat", "store.retention.frames"}
	if got := paths(ps); !slices.Equal(got, want) {
		t.Fatalf("problem paths = %v, want %v\n%v", got, want, err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 {
		t.Fatalf("error has %d lines, want 3:\n%v", len(lines), err)
	}
	if lines[2] != `store.retention.frames = "-5": must be at least 1` {
		t.Errorf("line 3 = %q", lines[2])
	}
}

func TestDefaultRoundTrip(t *testing.T) {
	def := Default()
	def.Push.Token = "abc"
	def.HTTP.CORSOrigins = []string{"*"}
	cfg := mustLoad(t, marshal(t, def))
	if got, want := marshal(t, cfg), marshal(t, def); got != want {
		t.Errorf("marshal → Load changed the config:\n%s\nwant\n%s", got, want)
	}
}

// FuzzLoad feeds arbitrary bytes as a config file: decoding never panics and
// ends in a config or in problems; an accepted config survives a marshal and
// reload unchanged and can be validated.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("listen: :7070\nstore:\n  retention:\n    max_age: 1h\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := defaults(func(string) string { return "" })
		ps := decodeYAML(&cfg, data)
		for _, p := range ps {
			if p.Reason == "" {
				t.Fatalf("problem without a reason: %#v", p)
			}
		}
		_ = cfg.Validate()
		if len(ps) > 0 {
			return
		}
		out := marshal(t, cfg)
		again := defaults(func(string) string { return "" })
		if ps := decodeYAML(&again, []byte(out)); len(ps) > 0 {
			t.Fatalf("re-loading the marshalled config failed: %v\n%s", ps.err(), out)
		}
		if got := marshal(t, again); got != out {
			t.Fatalf("round trip changed the config:\n%s\nwant\n%s", got, out)
		}
	})
}
