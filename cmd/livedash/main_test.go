package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"livedash/collectors"
	"livedash/dashboard/push"
)

func TestMain(m *testing.M) {
	if os.Getenv(childServeEnv) != "" {
		runChild()
	}
	goleak.VerifyTestMain(m,
		// chromedp and net/http keep idle helpers that end on their own.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// testServer is livedash started through run, as the binary would be.
type testServer struct {
	URL   string // http://127.0.0.1:port
	Addr  string
	Store string // store file path
	Log   *syncBuffer

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// syncBuffer is a bytes.Buffer safe for the server's log writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer runs `livedash serve --listen 127.0.0.1:0 --store <tmp>` plus
// args, waits until it listens, and stops it when the test ends. Pass
// "--store", path to reuse a store across restarts.
func startServer(tb testing.TB, args ...string) *testServer {
	tb.Helper()
	store := filepath.Join(tb.TempDir(), "livedash.db")
	for i, a := range args {
		if a == "--store" && i+1 < len(args) {
			store = args[i+1]
		}
	}
	full := append([]string{"serve", "--listen", "127.0.0.1:0", "--store", store}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	ctx = withListenHook(ctx, func(addr string) { addrc <- addr })
	ts := &testServer{Store: store, Log: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- run(ctx, full, io.Discard, ts.Log) }()
	select {
	case ts.Addr = <-addrc:
	case err := <-ts.done:
		cancel()
		tb.Fatalf("livedash exited before listening: %v\n%s", err, ts.Log.String())
	case <-time.After(15 * time.Second):
		cancel()
		tb.Fatalf("livedash did not listen within 15s\n%s", ts.Log.String())
	}
	ts.URL = "http://" + ts.Addr
	tb.Cleanup(func() {
		if err := ts.Stop(); err != nil {
			tb.Errorf("livedash exited with %v", err)
		}
		if tb.Failed() {
			tb.Logf("server log:\n%s", ts.Log.String())
		}
	})
	return ts
}

// Stop shuts the server down as SIGTERM would and returns run's error.
func (ts *testServer) Stop() error {
	ts.once.Do(func() {
		ts.cancel()
		select {
		case ts.err = <-ts.done:
		case <-time.After(30 * time.Second):
			ts.err = fmt.Errorf("did not stop within 30s")
		}
	})
	return ts.err
}

func getJSON(tb testing.TB, url string, into any) *http.Response {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if into != nil {
		if err := json.Unmarshal(body, into); err != nil {
			tb.Fatalf("GET %s: %v: %s", url, err, body)
		}
	}
	return resp
}

func TestVersionAndUsage(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "livedash ") {
		t.Fatalf("version: %v %q", err, out.String())
	}
	err := run(context.Background(), []string{"frobnicate"}, io.Discard, io.Discard)
	if code := exitCode(err, io.Discard); code != 2 {
		t.Fatalf("unknown command exit %d (%v)", code, err)
	}
	// Every command: help on stdout once, exit 0; a bad flag: usage and
	// the flag named once on stderr, exit 2.
	for _, cmd := range [][]string{{"serve"}, {"config", "check"}, {"tail"}} {
		name := strings.Join(cmd, " ")
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append(cmd[:len(cmd):len(cmd)], "-help"), &stdout, &stderr)
		if code := exitCode(err, &stderr); code != 0 || stderr.Len() != 0 ||
			strings.Count(stdout.String(), "-config") != 1 && strings.Count(stdout.String(), "-server") != 1 {
			t.Fatalf("%s -help: exit %d, stdout %q, stderr %q", name, code, stdout.String(), stderr.String())
		}
		stdout.Reset()
		stderr.Reset()
		err = run(context.Background(), append(cmd[:len(cmd):len(cmd)], "--no-such-flag"), &stdout, &stderr)
		if code := exitCode(err, &stderr); code != 2 || stdout.Len() != 0 ||
			strings.Count(stderr.String(), "no-such-flag") != 1 || !strings.Contains(stderr.String(), "Usage") && !strings.Contains(stderr.String(), "usage") {
			t.Fatalf("%s bad flag: exit %d, stdout %q, stderr %q", name, code, stdout.String(), stderr.String())
		}
	}
}

// A configuration with typos, bad durations and bad addresses: every
// problem listed with its key path, exit 2, nothing started.
func TestConfigCheckListsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	err := os.WriteFile(path, []byte("listen: nowhere\nstore:\n  retention:\n    frames: -5\n    max_agee: 1h\nstream:\n  heartbeat: 5 seconds\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	err = run(context.Background(), []string{"config", "check", "--config", path}, io.Discard, &stderr)
	if code := exitCode(err, &stderr); code != 2 {
		t.Fatalf("exit %d: %v", code, err)
	}
	out := stderr.String()
	for _, want := range []string{"listen", "store.retention.frames", "store.retention.max_agee", "stream.heartbeat"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// serve with the same file starts nothing.
	store := filepath.Join(t.TempDir(), "x.db")
	err = run(context.Background(), []string{"serve", "--config", path, "--store", store}, io.Discard, io.Discard)
	if code := exitCode(err, io.Discard); code != 2 {
		t.Fatalf("serve exit %d", code)
	}
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Fatalf("store was created despite a bad config: %v", err)
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"config", "check"}, &stdout, io.Discard); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

func TestServeHealthStatusAndShutdown(t *testing.T) {
	ts := startServer(t)
	if resp := getJSON(t, ts.URL+"/healthz", nil); resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
	if resp := getJSON(t, ts.URL+"/readyz", nil); resp.StatusCode != 200 {
		t.Fatalf("readyz %d", resp.StatusCode)
	}
	var st struct {
		Version, Epoch, Head, Oldest string
		Frames                       int
		Retention                    struct{ Frames int }
		UptimeSeconds                float64 `json:"uptime_seconds"`
	}
	getJSON(t, ts.URL+"/api/v1/status", &st)
	if len(st.Epoch) != 16 || !strings.HasPrefix(st.Head, st.Epoch+"-") || st.Retention.Frames != 100000 {
		t.Fatalf("status %+v", st)
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"livedash_store_frames", "livedash_store_append_duration_seconds", "go_goroutines", "process_resident_memory_bytes", "livedash_http_requests_total"} {
		if !bytes.Contains(body, []byte(m)) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if err := ts.Stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", ts.Addr, time.Second); err == nil {
		t.Fatal("still listening after shutdown")
	}
}

func TestSecondServerOnSameStoreFailsFast(t *testing.T) {
	ts := startServer(t)
	start := time.Now()
	var stderr syncBuffer
	err := run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0", "--store", ts.Store}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), ts.Store) || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second server: %v", err)
	}
	// The lock timeout is 1 s and the first server never lets go: the
	// ceiling only tells failing fast from waiting.
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("took %v", d)
	}
}

// Bad inputs over HTTP: a header block over the limit (431), a query over
// 8 KiB (414), paths that try to leave the embedded assets, and random paths
// and methods that must not grow /metrics.
func TestHTTPBadInputs(t *testing.T) {
	ts := startServer(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc/passwd", "/assets%2f..%2fx", "//evil.example/..", "/nope", "/index.html/..", "/vendor/"} {
		req, _ := http.NewRequest("GET", ts.URL+"/", nil)
		req.URL.Opaque = p // send the path exactly as written
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// "//evil.example/.." makes the client name evil.example in the
		// Host header too: refused before routing (421).
		if resp.StatusCode != 404 && resp.StatusCode != 400 && resp.StatusCode != 421 {
			t.Errorf("%s: status %d", p, resp.StatusCode)
		}
		if loc := resp.Header.Get("Location"); loc != "" {
			t.Errorf("%s: redirect to %s", p, loc)
		}
		if bytes.Contains(body, []byte("root:")) {
			t.Errorf("%s: served a file outside the assets", p)
		}
	}
	// Over-long query → 414 with the JSON error shape.
	resp, err := http.Get(ts.URL + "/api/v1/status?x=" + strings.Repeat("a", 9000))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 414 || e.Error.Code != "query_too_long" {
		t.Fatalf("long query: %d %+v", resp.StatusCode, e)
	}
	// Header block over the limit → 431 before any handler.
	req, _ := http.NewRequest("GET", ts.URL+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("b", 64<<10))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 431 {
		t.Fatalf("big header: %d", resp.StatusCode)
	}
	// Random paths and methods do not grow /metrics.
	count := func() int {
		resp, err := http.Get(ts.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Count(string(b), "livedash_http_requests_total{")
	}
	for i := range 200 {
		req, _ := http.NewRequest([]string{"GET", "POST", "BREW", "PUT", "DELETE"}[i%5], fmt.Sprintf("%s/random/%d?x=%d", ts.URL, i, i), nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	before := count()
	for i := range 500 {
		req, _ := http.NewRequest([]string{"GET", "POST", "DELETE", "PUT", "X" + fmt.Sprint(i)}[i%5], fmt.Sprintf("%s/other/%d/%d", ts.URL, i, i*7), nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	if after := count(); after > before+1 { // +1: the /metrics route itself
		t.Fatalf("http series grew from %d to %d", before, after)
	}
}

// push may not import collectors, so it keeps its own list of the built-in
// topics it refuses; this keeps the two in step.
func TestPushReservesEveryCollectorTopic(t *testing.T) {
	got := append([]string(nil), push.Reserved...)
	want := collectors.Names()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("push.Reserved = %v, collectors.Names() = %v", got, want)
	}
}

func TestPushEndToEnd(t *testing.T) {
	ts := startServer(t)
	// Without a token push is off.
	resp, err := http.Post(ts.URL+"/api/v1/push/app", "application/json", strings.NewReader(`{"queue_depth":3}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("push without token configured: %d", resp.StatusCode)
	}
	t.Setenv("LIVEDASH_PUSH_TOKEN", "s3cret-0123456789abcdef")
	ts2 := startServer(t)
	req, _ := http.NewRequest("POST", ts2.URL+"/api/v1/push/app", strings.NewReader(`{"queue_depth":3}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer s3cret-0123456789abcdef")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("push: %d %s", resp.StatusCode, body)
	}
	var st struct{ Head string }
	getJSON(t, ts2.URL+"/api/v1/status", &st)
	if strings.HasSuffix(st.Head, "-0") {
		t.Fatalf("head %s after a push", st.Head)
	}
}
