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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"livedash/dashboard"
)

const testLogin = "bench:pw-0123"

// fakeLivedash answers the routes the load tool uses the way livedash does
// (stream, long poll, push, /metrics, /healthz), over TLS with HTTP/2
// offered or plain HTTP, and refuses with 401 every request without the
// login — counting them, so a test can check that the tool sent it on
// every request.
type fakeLivedash struct {
	url   string
	login string

	mu       sync.Mutex
	seen     map[string]int  // "<proto> <alpn> <path>" of requests that carried the login
	refused  []string        // requests that did not
	h2Conns  map[string]bool // remote addresses of HTTP/2 stream requests
	pushTok  []string        // X-Push-Token of each push
	released chan struct{}   // closed by the next push
	value    int             // the last push's x
	parked   atomic.Int64
}

// startFake serves a fakeLivedash on 127.0.0.1, with gencert's certificate
// when useTLS.
func startFake(t *testing.T, useTLS bool) *fakeLivedash {
	t.Helper()
	f := &fakeLivedash{login: testLogin, seen: map[string]int{}, h2Conns: map[string]bool{}, released: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	if useTLS {
		dir := t.TempDir()
		if err := runGenCert([]string{"-dir", dir}, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer close(done)
			_ = srv.ServeTLS(ln, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
		}()
		f.url = "https://" + ln.Addr().String()
	} else {
		go func() { defer close(done); _ = srv.Serve(ln) }()
		f.url = "http://" + ln.Addr().String()
	}
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return f
}

func (f *fakeLivedash) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	alpn := "-"
	if r.TLS != nil {
		alpn = r.TLS.NegotiatedProtocol
	}
	user, password, ok := r.BasicAuth()
	f.mu.Lock()
	if !ok || user+":"+password != f.login {
		f.refused = append(f.refused, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Basic realm="livedash"`)
		http.Error(w, "log in", http.StatusUnauthorized)
		return
	}
	f.seen[r.Proto+" "+alpn+" "+r.URL.Path]++
	if r.ProtoMajor == 2 && r.URL.Path == "/api/v1/stream" {
		f.h2Conns[r.RemoteAddr] = true
	}
	f.mu.Unlock()
	switch r.URL.Path {
	case "/api/v1/stream":
		f.stream(w, r)
	case "/api/v1/frames":
		f.frames(w, r)
	case "/api/v1/push/benchlp":
		var body struct{ X int }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.pushTok = append(f.pushTok, r.Header.Get("X-Push-Token"))
		f.value = body.X
		close(f.released)
		f.released = make(chan struct{})
		f.mu.Unlock()
		io.WriteString(w, `{"id":"e-1"}`)
	case "/metrics":
		fmt.Fprintf(w, "livedash_api_long_polls %d\n", f.parked.Load())
	case "/healthz":
		io.WriteString(w, "ok\n")
	default:
		http.NotFound(w, r)
	}
}

// stream sends a hello, then a frame every 10 ms (none on ?topics=idle)
// until the client goes.
func (f *fakeLivedash) stream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	io.WriteString(w, "retry: 1000\nevent: hello\ndata: {\"epoch\":\"e\"}\n\n")
	w.(http.Flusher).Flush()
	switch r.URL.Query().Get("topics") {
	case "idle":
		<-r.Context().Done()
		return
	case "cut":
		// A write deadline left armed: over HTTP/2, Go's server resets
		// the stream when it fires, writing or not.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		<-r.Context().Done()
		return
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		fmt.Fprintf(w, "id: e-%d\nevent: frame\ndata: {\"ts\":%d}\n\n", seq, time.Now().UnixMilli())
		w.(http.Flusher).Flush()
	}
}

// frames answers at once, or with wait=60s parks until the next push and
// answers with its value.
func (f *fakeLivedash) frames(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("wait") != "60s" {
		io.WriteString(w, `{"frames":[]}`)
		return
	}
	f.mu.Lock()
	released := f.released
	f.mu.Unlock()
	f.parked.Add(1)
	select {
	case <-released:
	case <-r.Context().Done():
	}
	f.parked.Add(-1)
	f.mu.Lock()
	v := f.value
	f.mu.Unlock()
	fmt.Fprintf(w, `{"frames":[{"topic":"benchlp","value":%d}]}`, v)
}

func (f *fakeLivedash) counts() (seen map[string]int, refused []string, h2Conns int, pushTok []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen = map[string]int{}
	for k, v := range f.seen {
		seen[k] = v
	}
	return seen, append([]string(nil), f.refused...), len(f.h2Conns), append([]string(nil), f.pushTok...)
}

// runBench runs the load tool with args and returns its report.
func runBench(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := run(ctx, args, &out, &errOut); err != nil {
		t.Fatalf("livedash-bench %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

func number(t *testing.T, text, re string) int {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %q in:\n%s", re, text)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// A steady run against an https URL dials TLS with ALPN http/1.1 and sends
// the login on every stream and on the /metrics scrape; the frames arrive
// whole.
func TestSteadyOverTLSWithLogin(t *testing.T) {
	f := startFake(t, true)
	out := runBench(t, "-url", f.url+"/api/v1/stream", "-basic", testLogin, "-clients", "20",
		"-duration", "300ms", "-warmup", "100ms", "-pid", strconv.Itoa(os.Getpid()))
	if !strings.Contains(out, "target https://127.0.0.1:") {
		t.Errorf("report without the https target:\n%s", out)
	}
	if n := number(t, out, `frames ([0-9]+) `); n < 20*10 {
		t.Errorf("%d frames for 20 clients in 300 ms:\n%s", n, out)
	}
	if number(t, out, `gaps ([0-9]+)`) != 0 || number(t, out, `dups ([0-9]+)`) != 0 || number(t, out, `conn_ends ([0-9]+)`) != 0 {
		t.Errorf("gaps, duplicates or ends:\n%s", out)
	}
	seen, refused, _, _ := f.counts()
	if len(refused) > 0 {
		t.Errorf("requests without the login: %q", refused)
	}
	if seen["HTTP/1.1 http/1.1 /api/v1/stream"] != 20 || seen["HTTP/1.1 http/1.1 /metrics"] != 1 {
		t.Errorf("requests seen: %v; want 20 streams and one /metrics over TLS, ALPN http/1.1", seen)
	}
}

// -tls with an http URL dials TLS too; without -basic the server's 401
// keeps the clients from connecting (the run is cut by its context).
func TestTLSFlagAndNoLogin(t *testing.T) {
	f := startFake(t, true)
	out := runBench(t, "-url", "http"+strings.TrimPrefix(f.url, "https")+"/api/v1/stream", "-tls", "-basic", testLogin,
		"-clients", "2", "-duration", "100ms", "-warmup", "50ms")
	if !strings.Contains(out, "target https://") || number(t, out, `frames ([0-9]+) `) == 0 {
		t.Errorf("-tls with an http URL:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	err := run(ctx, []string{"-url", f.url + "/api/v1/stream", "-clients", "1", "-duration", "100ms"}, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("a run without the login succeeded")
	}
	if _, refused, _, _ := f.counts(); len(refused) == 0 {
		t.Fatal("the server refused nothing")
	}
}

// The idle scenario over HTTP/2 opens its streams on ceil(N/200)
// connections, over HTTP/1.1 one connection per stream (TLS or plain), and
// reports the RSS per stream; every request carries the login.
func TestIdleScenario(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name          string
		tls           bool
		args          []string
		streams       int
		conns         int
		proto, seenAs string
	}{
		{"h2", true, []string{"-h2"}, 450, 3, "HTTP/2 TLS", "HTTP/2.0 h2 /api/v1/stream"},
		{"h1 tls", true, nil, 30, 30, "HTTP/1.1 TLS", "HTTP/1.1 http/1.1 /api/v1/stream"},
		{"h1 plain", false, nil, 30, 30, "HTTP/1.1", "HTTP/1.1 - /api/v1/stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, tc.tls)
			args := append([]string{"-scenario", "idle", "-url", f.url + "/api/v1/stream?topics=idle", "-basic", testLogin,
				"-clients", strconv.Itoa(tc.streams), "-duration", "200ms", "-warmup", "100ms", "-pid", pid}, tc.args...)
			out := runBench(t, args...)
			want := fmt.Sprintf("idle %s  streams %d  connections %d  server rss base ", tc.proto, tc.streams, tc.conns)
			if !strings.Contains(out, want) || !strings.Contains(out, "KiB per stream)") || !strings.Contains(out, "streams ended early 0") {
				t.Fatalf("want %q and no early ends in:\n%s", want, out)
			}
			seen, refused, h2Conns, _ := f.counts()
			if len(refused) > 0 || seen[tc.seenAs] != tc.streams {
				t.Fatalf("seen %v, refused %q; want %d × %q", seen, refused, tc.streams, tc.seenAs)
			}
			if tc.args != nil && h2Conns != tc.conns {
				t.Fatalf("streams came over %d HTTP/2 connections, want %d", h2Conns, tc.conns)
			}
		})
	}
}

// Streams the server resets during the hold are counted, with the first
// one's error.
func TestIdleCountsStreamsThatEnd(t *testing.T) {
	f := startFake(t, true)
	out := runBench(t, "-scenario", "idle", "-h2", "-url", f.url+"/api/v1/stream?topics=cut", "-basic", testLogin,
		"-clients", "10", "-duration", "300ms", "-warmup", "100ms", "-pid", strconv.Itoa(os.Getpid()))
	if !strings.Contains(out, "streams ended early 10\n") || !strings.Contains(out, "first stream that ended early: stream error: stream ID") {
		t.Fatalf("resets not reported:\n%s", out)
	}
}

// Long polls, the push (with its token in X-Push-Token beside the login),
// the /metrics polling and the pipelined requests all carry the login,
// over TLS.
func TestLongPollAndPipelineSendTheLogin(t *testing.T) {
	f := startFake(t, true)
	out := runBench(t, "-scenario", "longpoll", "-url", f.url+"/", "-basic", testLogin, "-token", "tok-0123456789abcdef",
		"-clients", "20", "-rounds", "1")
	if !strings.Contains(out, "longpoll round 1: 20 polls released by one push") {
		t.Fatalf("longpoll:\n%s", out)
	}
	out = runBench(t, "-scenario", "pipeline", "-url", f.url+"/", "-basic", testLogin, "-clients", "1000", "-pid", strconv.Itoa(os.Getpid()))
	if !strings.Contains(out, "pipeline: 1000 pairs on one connection") {
		t.Fatalf("pipeline:\n%s", out)
	}
	seen, refused, _, pushTok := f.counts()
	if len(refused) > 0 {
		t.Errorf("requests without the login: %q", refused)
	}
	if len(pushTok) != 2 || pushTok[0] != "tok-0123456789abcdef" {
		t.Errorf("push tokens %q, want two pushes with X-Push-Token", pushTok)
	}
	// 20 first requests + 2 × 20 polls, 1000 pipelined; /healthz: 1000 pipelined + 500 idle + the loaded ones.
	if seen["HTTP/1.1 http/1.1 /api/v1/frames"] != 20+40+1000 || seen["HTTP/1.1 http/1.1 /healthz"] < 1500 || seen["HTTP/1.1 http/1.1 /metrics"] < 2 {
		t.Errorf("requests seen: %v", seen)
	}
}

func TestSecureOptions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-url", "https://10.0.0.1:7070/"}, "only loopback"},
		{[]string{"-url", "ftp://127.0.0.1/"}, "want http(s)://"},
		{[]string{"-h2", "-scenario", "idle", "-url", "http://127.0.0.1:1/"}, "-h2: only with TLS"},
		{[]string{"-h2", "-url", "https://127.0.0.1:1/"}, "-h2: only with TLS (-tls or an https -url) and -scenario idle"},
		{[]string{"-basic", "nocolon", "-url", "https://127.0.0.1:1/"}, "-basic: want user:password"},
		{[]string{"-basic", ":pw", "-url", "https://127.0.0.1:1/"}, "-basic: want user:password"},
		{[]string{"-scenario", "idle", "-url", "https://127.0.0.1:1/"}, "idle: -pid is needed"},
	} {
		err := run(t.Context(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
	u, err := checkTarget("https://127.0.0.1/x")
	if err != nil || u.Host != "127.0.0.1:443" || u.Scheme != "https" {
		t.Errorf("https without a port: %v %v", u, err)
	}
}

// gencert's files are a web config livedash accepts: TLS with the
// certificate, and the login as a bcrypt hash.
func TestGenCert(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	var out bytes.Buffer
	if err := runGenCert([]string{"-dir", dir, "-basic", testLogin, "-cost", "4"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != filepath.Join(dir, "web.yml") {
		t.Errorf("printed %q", out.String())
	}
	wc, err := dashboard.LoadWebConfig(filepath.Join(dir, "web.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if wc.TLS == nil || len(wc.Users) != 1 {
		t.Fatalf("TLS %v, users %v", wc.TLS != nil, wc.Users)
	}
	if err := bcrypt.CompareHashAndPassword(wc.Users["bench"], []byte("pw-0123")); err != nil {
		t.Fatalf("the hash does not match the password: %v", err)
	}
	for _, args := range [][]string{
		{},
		{"-dir", dir, "-basic", "bad user:pw"},
		{"-dir", dir, "-basic", "user"},
		{"-dir", dir, "-cost", "99"},
		{"-dir", dir, "extra"},
	} {
		if err := runGenCert(args, io.Discard, io.Discard); err == nil {
			t.Errorf("gencert %q: no error", args)
		}
	}
}
