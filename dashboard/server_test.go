package dashboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"livedash/config"
	"livedash/dashboard"
	"livedash/dashboard/hub"
	"livedash/dashboard/sse"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
	"livedash/dashboard/ws"
)

type harness struct {
	srv    *dashboard.Server
	url    string
	store  *bolt.Store
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// serve starts a real server on 127.0.0.1:0 with a real store; mod may
// change the configuration and the dependencies first.
func serve(tb testing.TB, mod func(*config.Config, *dashboard.Deps)) *harness {
	tb.Helper()
	cfg := config.Default()
	cfg.Stream.DrainWindow = config.Duration(100 * time.Millisecond)
	st, err := bolt.Open(bolt.Options{Path: filepath.Join(tb.TempDir(), "r.db"), NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	deps := dashboard.Deps{
		Store:    st,
		Registry: prometheus.NewRegistry(),
		Version:  "test",
		Assets: fstest.MapFS{
			"index.html":      {Data: []byte("<!doctype html><title>livedash</title>")},
			"app.js":          {Data: []byte("export {}")},
			"vendor/uPlot.js": {Data: []byte("/* uplot */")},
		},
	}
	if mod != nil {
		mod(&cfg, &deps)
	}
	srv := dashboard.New(cfg, deps)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	scheme := "http://"
	if deps.Web != nil && deps.Web.TLS != nil {
		scheme = "https://"
	}
	h := &harness{srv: srv, url: scheme + ln.Addr().String(), store: st, reg: deps.Registry, cancel: cancel, done: done}
	tb.Cleanup(func() {
		cancel()
		select {
		case err, ok := <-done:
			if ok && err != nil {
				tb.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			tb.Errorf("Serve did not return within 30s of its context ending")
		}
		_ = st.Close()
	})
	return h
}

// shutdown cancels the server and waits, at most limit, for Serve to
// return nil; it returns how long that took.
func (h *harness) shutdown(tb testing.TB, limit time.Duration) time.Duration {
	tb.Helper()
	start := time.Now()
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			tb.Fatalf("Serve: %v", err)
		}
		close(h.done)
	case <-time.After(limit):
		tb.Fatalf("Serve did not return within %v", limit)
	}
	return time.Since(start)
}

func get(tb testing.TB, url string, hdr ...string) (*http.Response, string) {
	tb.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestAssets(t *testing.T) {
	h := serve(t, nil)
	resp, body := get(t, h.url+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, "<title>livedash") {
		t.Fatalf("/: %d %q", resp.StatusCode, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("CSP %q", csp)
	}
	if resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("ETag") == "" {
		t.Fatalf("index caching: %v", resp.Header)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("page security headers: %v", resp.Header)
	}
	// API responses are data: nosniff and a CSP that allows nothing.
	for _, path := range []string{"/api/v1/frames", "/api/v1/latest", "/api/v1/nope"} {
		ar, _ := get(t, h.url+path)
		if ar.Header.Get("X-Content-Type-Options") != "nosniff" ||
			ar.Header.Get("Content-Security-Policy") != "default-src 'none'; frame-ancestors 'none'" {
			t.Fatalf("%s security headers: %v", path, ar.Header)
		}
	}
	resp, _ = get(t, h.url+"/", "If-None-Match", resp.Header.Get("ETag"))
	if resp.StatusCode != 304 {
		t.Fatalf("revalidation: %d", resp.StatusCode)
	}
	resp, _ = get(t, h.url+"/app.js")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Fatalf("app.js content type %q", ct)
	}
	resp, _ = get(t, h.url+"/vendor/uPlot.js")
	if resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("unversioned vendor file cached: %q", resp.Header.Get("Cache-Control"))
	}
	resp, _ = get(t, h.url+"/vendor/uPlot.js?v=1.6.32")
	if !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Fatalf("versioned file caching %q", resp.Header.Get("Cache-Control"))
	}
	resp, body = get(t, h.url+"/missing.js")
	if resp.StatusCode != 404 || !strings.Contains(body, `"code":"not_found"`) {
		t.Fatalf("missing: %d %s", resp.StatusCode, body)
	}
}

func TestErrorShape(t *testing.T) {
	h := serve(t, nil)
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/api/v1/nope", 404, "not_found"},
		{"DELETE", "/healthz", 405, "method_not_allowed"},
		{"POST", "/api/v1/status", 405, "method_not_allowed"},
	} {
		req, _ := http.NewRequest(tc.method, h.url+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct{ Code, Message string }
		}
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
			t.Errorf("%s %s: %d %+v %v", tc.method, tc.path, resp.StatusCode, e, err)
		}
	}
}

func TestReadinessFollowsTheStore(t *testing.T) {
	h := serve(t, nil)
	if resp, _ := get(t, h.url+"/readyz"); resp.StatusCode != 200 {
		t.Fatalf("readyz %d", resp.StatusCode)
	}
	_ = h.store.Close() // appends now fail: not ready
	if resp, body := get(t, h.url+"/readyz"); resp.StatusCode != 503 || strings.Contains(body, "closed") {
		t.Fatalf("readyz after close: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, h.url+"/healthz"); resp.StatusCode != 200 {
		t.Fatal("healthz must stay up")
	}
}

// Only configured origins get CORS headers, and never credentials.
func TestCORS(t *testing.T) {
	h := serve(t, func(c *config.Config, _ *dashboard.Deps) {
		c.HTTP.CORSOrigins = []string{"https://ops.example.com"}
	})
	resp, _ := get(t, h.url+"/api/v1/status", "Origin", "https://evil.example.com")
	if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Fatalf("unlisted origin allowed: %q", v)
	}
	resp, _ = get(t, h.url+"/api/v1/status", "Origin", "https://ops.example.com")
	if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "https://ops.example.com" {
		t.Fatalf("listed origin: %q", v)
	}
	if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatal("credentials allowed")
	}
	// And without any configured origin, no CORS header at all.
	h2 := serve(t, nil)
	resp, _ = get(t, h2.url+"/api/v1/status", "Origin", "https://ops.example.com")
	if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Fatalf("no origins configured, got %q", v)
	}
}

// Slowloris: headers trickled one byte at a time are cut at the
// read-header timeout, and a connection that sends nothing too, on the
// stream's route as on any other.
func TestSlowlorisCut(t *testing.T) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		c.HTTP.ReadHeaderTimeout = config.Duration(300 * time.Millisecond)
		addHub(c, d)
	})
	for _, path := range []string{"/healthz", "/api/v1/stream"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		req := "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + strings.Repeat("a", 100)
		var werr error
		for i := 0; i < len(req) && werr == nil; i++ {
			_, werr = conn.Write([]byte{req[i]})
			time.Sleep(20 * time.Millisecond)
		}
		if werr == nil {
			// Every byte was accepted, long after the 300 ms timeout: the
			// server must have closed by now (a read that times out means
			// the connection is still open).
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, werr = conn.Read(make([]byte, 1024))
		}
		conn.Close()
		if werr == nil || isTimeout(werr) {
			t.Fatalf("%s: connection still open after %v (%v)", path, time.Since(start), werr)
		}
	}
	// Silent from the start: closed at the read-header timeout too.
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	// Closed not before the read-header timeout (300 ms), and well before
	// any other timeout would close it (idle: 60 s): the 15 s read deadline
	// is a ceiling between the two.
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	n, err := conn.Read(make([]byte, 64))
	if n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("silent connection: read %d, %v", n, err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("silent connection closed after %v; the read-header timeout is 300ms", d)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Idle keep-alive connections are closed at the idle timeout, and the
// listener cap (http.max_conns) holds.
func TestIdleConnectionsAndListenerCap(t *testing.T) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		// Long enough that the held connections are still held when the
		// extra one is checked, however slowly this test runs until then.
		c.HTTP.IdleTimeout = config.Duration(2 * time.Second)
		c.HTTP.MaxConns = 20
		addHub(c, d)
	})
	addr := strings.TrimPrefix(h.url, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// The 21st connection is accepted by the kernel but not served while 20
	// are held.
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_, _ = extra.Write([]byte("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"))
	_ = extra.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _ := extra.Read(make([]byte, 64)); n > 0 {
		t.Fatal("served over the connection cap")
	}
	// After the idle timeout the held connections are closed by the server
	// and the waiting one is served.
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("held connection not closed by the server: %v", err)
		}
	}
	_ = extra.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 64)
	if n, err := extra.Read(buf); n == 0 || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
		t.Fatalf("waiting connection: %q %v", buf[:n], err)
	}
}

// addHub gives the server a hub fed by its store.
func addHub(c *config.Config, d *dashboard.Deps) *sse.Transport {
	hb := sse.New(hub.New(d.Store, c.Stream, hub.Options{}), sse.Options{})
	d.Store.OnCommit(hb.Publish)
	d.Stream = hb
	d.WebSocket = ws.New(hb.Hub, ws.Options{AllowedOrigins: c.HTTP.CORSOrigins}).Serve
	return hb
}

// A stream client that stopped reading while its socket is full does not
// hold shutdown until its write deadline, and Serve still returns nil (exit
// 0).
func TestShutdownWithStuckStream(t *testing.T) {
	var hb *sse.Transport
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		c.Stream.DrainWindow = config.Duration(200 * time.Millisecond)
		c.Stream.WriteTimeout = config.Duration(5 * time.Minute) // far longer than the bound below
		c.Stream.QueueSize = 1 << 20                             // never cut as slow
		hb = sse.New(hub.New(d.Store, c.Stream, hub.Options{}), sse.Options{})
		d.Store.OnCommit(hb.Publish)
		d.Stream = hb
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("GET /api/v1/stream HTTP/1.1\r\nHost: localhost\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, "the stream registered", func() bool { return hb.Streams() == 1 })
	// 40 MiB of frames the client never reads: more than the socket buffers
	// hold, so the stream's writer blocks in write(2), whether before the
	// shutdown below or after.
	big := strings.Repeat("x", 64<<10)
	for i := range 640 {
		if _, err := h.store.Append([]store.Batch{{Topic: "t", Samples: []store.Sample{{Name: "x", Labels: map[string]string{"p": big}, Value: float64(i)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	// Undelayed: the drain window + the 1 s deadline a kicked writer gets.
	// The ceiling only tells that from waiting for the 5-minute write
	// deadline.
	d := h.shutdown(t, time.Minute)
	t.Logf("shutdown took %v", d)
}

// A client that disconnects in the middle of a long replay ends its handler
// at once and leaves no read transaction open (the store can close right
// away: bbolt's Close waits for open transactions).
func TestDisconnectMidReplay(t *testing.T) {
	var hb *sse.Transport
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		c.Stream.ReplayMaxFrames = 100000
		c.Stream.ReplayMaxBytes = 1 << 30
		hb = sse.New(hub.New(d.Store, c.Stream, hub.Options{}), sse.Options{})
		d.Store.OnCommit(hb.Publish)
		d.Stream = hb
	})
	// 3,000 frames of 16 KiB: a 48 MiB replay.
	big := strings.Repeat("r", 16<<10)
	for i := range 30 {
		var bs []store.Batch
		for j := range 100 {
			bs = append(bs, store.Batch{Topic: "t", Samples: []store.Sample{{Name: "x", Labels: map[string]string{"p": big}, Value: float64(i*100 + j)}}})
		}
		if _, err := h.store.Append(bs); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	cursor := store.ID{Epoch: h.store.Epoch(), Seq: 0}
	if _, err := conn.Write([]byte("GET /api/v1/stream HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: " + cursor.String() + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// Read a little of the replay, then go away.
	if _, err := io.ReadFull(conn, make([]byte, 256<<10)); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	start := time.Now()
	waitUntil(t, 15*time.Second, "the stream to end after its client left", func() bool { return hb.Streams() == 0 })
	closed := make(chan error, 1)
	go func() { closed <- h.store.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("store.Close blocked: a read transaction is still open")
	}
	t.Logf("handler gone %v after the disconnect", time.Since(start))
}

// Shutdown through the server: streams are closed spread over the drain
// window, each with a final retry: hint, before Serve returns.
func TestServeDrainsStreamsBeforeReturning(t *testing.T) {
	var hb *sse.Transport
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		c.Stream.DrainWindow = config.Duration(400 * time.Millisecond)
		hb = sse.New(hub.New(d.Store, c.Stream, hub.Options{}), sse.Options{})
		d.Store.OnCommit(hb.Publish)
		d.Stream = hb
	})
	const n = 4
	type end struct {
		tail string
		at   time.Time
	}
	ends := make(chan end, n)
	for range n {
		resp, err := http.Get(h.url + "/api/v1/stream")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			ends <- end{string(b), time.Now()}
		}()
	}
	waitUntil(t, 15*time.Second, "the streams registered", func() bool { return hb.Streams() == n })
	start := time.Now()
	h.cancel()
	if err := recvWithin(t, h.done, 30*time.Second, "Serve to return"); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	close(h.done)
	// The last of 4 streams is due at 3/4 of the 400 ms window: Serve
	// cannot return sooner. A stream is unregistered only after its
	// connection is closed, so none left means every one was closed before
	// Serve returned.
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("Serve returned after %v; the drain window is 400ms", d)
	}
	if k := hb.Streams(); k != 0 {
		t.Fatalf("%d streams still registered when Serve returned", k)
	}
	for range n {
		e := recvWithin(t, ends, 10*time.Second, "a stream's end")
		if !strings.Contains(e.tail[max(0, len(e.tail)-64):], "retry: ") {
			t.Fatalf("stream ended without a retry: hint: %q", e.tail[max(0, len(e.tail)-64):])
		}
	}
}
