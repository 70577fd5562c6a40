package main

// Browser end-to-end tests: the real binary (run) and the real page in
// headless Chromium (Debian's chromium package, driven by chromedp). They are
// the proof that the page works end to end; a missing browser fails them.
//
// Screenshots go to $ARTIFACTS_DIR (or a temp dir) and are logged. (Not a
// LIVEDASH_ variable: the config loader rejects unknown LIVEDASH_* names.)

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"livedash/assets/browsertest"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
)

// newBrowser starts a fresh headless Chromium for tb, 1280×1000, and
// returns the context of its first tab.
func newBrowser(tb testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	tb.Helper()
	return browsertest.New(tb, 1280, 1000, extra...)
}

// watchConsole reports the tab's console errors and exceptions
// (browsertest.WatchConsole).
func watchConsole(tb testing.TB, ctx context.Context) (check func()) {
	tb.Helper()
	return browsertest.WatchConsole(tb, ctx)
}

// chartDebug and pageDebug mirror window.livedash.debug() (assets/web/js).
type chartDebug struct {
	State   string
	Points  int
	Series  int
	LastSeq int64
	Epoch   string
	Seqs    []int64
	Dups    int
	Marks   int
	FirstX  *float64
	// FirstDataX is the time of the oldest point with a value (the query
	// answers the whole window, with nulls where nothing was stored).
	FirstDataX  *float64
	LastX       *float64
	Monotonic   bool
	Labels      []string
	Hidden      []string // series hidden by a legend click
	DrawnHidden int      // series uPlot has hidden
}

type pageDebug struct {
	State        string
	Mode         string
	LastID       string
	Transport    string
	Charts       map[string]chartDebug
	Frames       int
	FirstPaintMs *float64
	WindowSec    int
	Builds       int
	Renders      int
	RenderMsAvg  *float64
	RenderMsMax  float64
	Hub          struct {
		Transport string
		Topics    []string
		Stats     struct{ Streams, Polls, Frames, Dups, Gaps, Resets, Fallbacks int }
	}
}

func debugOf(tb testing.TB, ctx context.Context) pageDebug {
	tb.Helper()
	d, err := chromedp.Run(ctx, chromedp.Evaluate[*pageDebug](`window.livedash ? window.livedash.debug() : null`))
	if err != nil {
		tb.Fatalf("livedash.debug(): %v", err)
	}
	if d == nil {
		return pageDebug{}
	}
	return *d
}

// waitFor polls cond every 100 ms until it is true or timeout passes (at
// least 15 s: timeouts are ceilings that catch a hang, and the machine may
// be loaded).
func waitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) time.Duration {
	tb.Helper()
	timeout = max(timeout, 15*time.Second)
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

func artifactDir(tb testing.TB) string {
	if d := os.Getenv("ARTIFACTS_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	return tb.TempDir()
}

func screenshot(tb testing.TB, ctx context.Context, name string) {
	tb.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.Errorf("screenshot: %v", err)
		return
	}
	p := filepath.Join(artifactDir(tb), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.Errorf("screenshot: %v", err)
		return
	}
	tb.Logf("screenshot: %s", p)
}

// topicsOf returns the topics the server's catalog lists.
func topicsOf(tb testing.TB, base string) []string {
	tb.Helper()
	var cat struct{ Topics []struct{ Topic string } }
	getJSON(tb, base+"/api/v1/series", &cat)
	var ts []string
	for _, t := range cat.Topics {
		ts = append(ts, t.Topic)
	}
	return ts
}

// defaultTopics are the collectors on by default (no --demo, no targets).
var defaultTopics = []string{"cpu", "memory", "load", "network", "disk", "filesystem", "system", "self"}

// waitCatalog waits until the server has sampled every default collector, so
// that a page load can be timed against data that exists.
func waitCatalog(tb testing.TB, base string, topics []string) {
	tb.Helper()
	waitFor(tb, "every default collector in /api/v1/series", 15*time.Second, func() bool {
		have := topicsOf(tb, base)
		for _, t := range topics {
			if !slices.Contains(have, t) {
				return false
			}
		}
		return true
	})
}

// chartsReady: every topic has a drawn chart with points.
func chartsReady(ctx context.Context, topics []string) (bool, error) {
	js := `(() => { const ts = ` + mustJSON(topics) + `;
	  const d = window.livedash && window.livedash.debug();
	  if (!d) return false;
	  return ts.every((t) => d.charts[t] && d.charts[t].points > 0 && d.charts[t].state === 'ready') &&
	    document.querySelectorAll('#panels canvas').length >= ts.length; })()`
	return chromedp.Run(ctx, chromedp.Evaluate[bool](js))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// streamsConnected reads livedash_stream_connected from /metrics.
func streamsConnected(tb testing.TB, base string) float64 {
	tb.Helper()
	v := metric(tb, base, "livedash_stream_connected ")
	if v < 0 {
		tb.Fatalf("/metrics has no livedash_stream_connected")
	}
	return v
}

// framesAfter lists the seqs of topic's frames the server holds in
// (after, upto], paging through /api/v1/frames.
func framesAfter(tb testing.TB, base, topic, after string, upto int64) []int64 {
	tb.Helper()
	var out []int64
	cur := after
	for range 100 {
		var r struct {
			Frames []struct{ ID string }
			Next   string
		}
		getJSON(tb, base+"/api/v1/frames?topics="+url.QueryEscape(topic)+"&limit=1000&after="+url.QueryEscape(cur), &r)
		for _, f := range r.Frames {
			s := seqOf(f.ID)
			if s > upto {
				return out
			}
			out = append(out, s)
		}
		if len(r.Frames) == 0 || r.Next == "" || r.Next == cur {
			return out
		}
		cur = r.Next
	}
	return out
}

func seqOf(id string) int64 {
	_, s, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// checkExact: each chart drew exactly the server's frames of its topic, from
// its first live frame to its last: no gap, no duplicate, x increasing.
// liveOnAll reports whether every default chart drew at least n live frames.
// A wait must cover every chart that checkExact will check: the collectors
// run on their own schedules, so one chart can be a frame behind another
// (network and disk had 2 frames when cpu had 3 in one CI run).
func liveOnAll(d pageDebug, n int) bool {
	for _, topic := range defaultTopics {
		if len(d.Charts[topic].Seqs) < n {
			return false
		}
	}
	return true
}

func checkExact(tb testing.TB, base string, d pageDebug, epoch string, minFrames int) {
	tb.Helper()
	for topic, c := range d.Charts {
		if !c.Monotonic {
			tb.Errorf("%s: x values not strictly increasing", topic)
		}
		if len(c.Seqs) < minFrames {
			tb.Errorf("%s: only %d live frames drawn, want >= %d", topic, len(c.Seqs), minFrames)
			continue
		}
		if c.Epoch != epoch {
			tb.Errorf("%s: chart epoch %s, server %s", topic, c.Epoch, epoch)
		}
		first, last := c.Seqs[0], c.Seqs[len(c.Seqs)-1]
		want := framesAfter(tb, base, topic, fmt.Sprintf("%s-%d", epoch, first-1), last)
		if !slices.Equal(c.Seqs, want) {
			tb.Errorf("%s: drew seqs %s\nserver has   %s", topic, short(c.Seqs), short(want))
		}
	}
}

func short(s []int64) string {
	if len(s) <= 40 {
		return fmt.Sprint(s)
	}
	return fmt.Sprint(s[:20], " … ", s[len(s)-20:], fmt.Sprintf(" (%d)", len(s)))
}

func statusOf(tb testing.TB, base string) (epoch, head string) {
	tb.Helper()
	var st struct{ Epoch, Head string }
	getJSON(tb, base+"/api/v1/status", &st)
	return st.Epoch, st.Head
}

// hubStats is the shared worker's own view (connections, dups, gaps, resets).
func hubStats(tb testing.TB, ctx context.Context) string {
	tb.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.livedash.hub().then((h) => JSON.stringify(h.stats))`, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Errorf("livedash.hub(): %v", err)
	}
	return s
}

func click(tb testing.TB, ctx context.Context, js string) {
	tb.Helper()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const el = `+js+`; if (!el) return false; el.click(); return true; })()`))
	if err != nil || !ok {
		tb.Fatalf("click %s: %v (found: %v)", js, err, ok)
	}
}

// ---- the tests --------------------------------------------------------------

// Page loads; every default collector's chart gets points (the time it took
// is logged; the ceiling only catches a page that never draws); no console
// errors; screenshot saved; first paint and update cost measured.
func TestBrowserLoad(t *testing.T) {
	srv := startServer(t)
	waitCatalog(t, srv.URL, defaultTopics)
	ctx := newBrowser(t)
	check := watchConsole(t, ctx)
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every default chart with data", 30*time.Second, func() bool {
		ok, err := chartsReady(ctx, defaultTopics)
		return err == nil && ok
	})
	took := time.Since(start)
	t.Logf("all %d default charts had data %v after navigation started", len(defaultTopics), took.Round(time.Millisecond))
	d := debugOf(t, ctx)
	if d.FirstPaintMs != nil {
		t.Logf("first chart paint: %.0f ms after navigation start", *d.FirstPaintMs)
	}
	// A few live updates drawn, then the render cost.
	r0 := d.Renders
	waitFor(t, "three live updates drawn", 30*time.Second, func() bool { return debugOf(t, ctx).Renders >= r0+3 })
	d = debugOf(t, ctx)
	if d.RenderMsAvg != nil {
		t.Logf("render per update (all %d charts): avg %.2f ms, max %.2f ms over %d renders", len(d.Charts), *d.RenderMsAvg, d.RenderMsMax, d.Renders)
	}
	if d.Transport != "shared-worker" {
		t.Errorf("transport %q, want shared-worker", d.Transport)
	}
	screenshot(t, ctx, "livedash-load.png")
	check()
}

// Restart: the server stops for 3 s and comes back on the same store and
// address; the page reconnects by itself; no gap, no duplicate.
func TestBrowserRestart(t *testing.T) {
	srv := startServer(t)
	waitCatalog(t, srv.URL, defaultTopics)
	ctx, check := openPage(t, srv.URL+"/")
	waitFor(t, "charts", 10*time.Second, func() bool { ok, err := chartsReady(ctx, defaultTopics); return err == nil && ok })
	waitFor(t, "live frames", 10*time.Second, func() bool { return len(debugOf(t, ctx).Charts["cpu"].Seqs) >= 2 })
	epoch, _ := statusOf(t, srv.URL)

	if err := srv.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	waitFor(t, "the page to notice", 10*time.Second, func() bool {
		s := debugOf(t, ctx).State
		return s == "reconnecting" || s == "connecting"
	})
	time.Sleep(3 * time.Second)
	srv2 := startServer(t, "--listen", srv.Addr, "--store", srv.Store)
	_, head := statusOf(t, srv2.URL)
	restartSeq := seqOf(head)
	after := func(c chartDebug) int {
		n := 0
		for _, s := range c.Seqs {
			if s > restartSeq {
				n++
			}
		}
		return n
	}
	waitFor(t, "every chart drawing frames after the restart", 40*time.Second, func() bool {
		d := debugOf(t, ctx)
		for _, topic := range defaultTopics {
			if after(d.Charts[topic]) < 3 {
				return false
			}
		}
		return true
	})
	d := debugOf(t, ctx)
	for _, topic := range defaultTopics {
		if c := d.Charts[topic]; len(c.Seqs) == after(c) {
			t.Errorf("%s: no live frame from before the restart: the chart was re-loaded, not resumed", topic)
		}
	}
	checkExact(t, srv2.URL, d, epoch, 4)
	t.Logf("after restart: state %s, hub %s", d.State, hubStats(t, ctx))
	screenshot(t, ctx, "livedash-restart.png")
	check()
}

// Store wiped: the new epoch makes the server reset; the page re-loads its
// windows, draws nothing of the old epoch, and marks the gap.
func TestBrowserStoreWiped(t *testing.T) {
	srv := startServer(t)
	waitCatalog(t, srv.URL, defaultTopics)
	ctx, check := openPage(t, srv.URL+"/")
	waitFor(t, "charts", 10*time.Second, func() bool { ok, err := chartsReady(ctx, defaultTopics); return err == nil && ok })
	waitFor(t, "live frames of the old epoch", 15*time.Second, func() bool { return liveOnAll(debugOf(t, ctx), 2) })
	oldEpoch, _ := statusOf(t, srv.URL)
	if err := srv.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := os.Remove(srv.Store); err != nil {
		t.Fatal(err)
	}
	srv2 := startServer(t, "--listen", srv.Addr, "--store", srv.Store)
	wiped := float64(time.Now().Unix())
	newEpoch, _ := statusOf(t, srv2.URL)
	if newEpoch == oldEpoch {
		t.Fatalf("store wiped but epoch unchanged")
	}
	waitFor(t, "every chart re-loaded in the new epoch", 40*time.Second, func() bool {
		d := debugOf(t, ctx)
		for _, topic := range defaultTopics {
			c := d.Charts[topic]
			if c.Epoch != newEpoch || c.State != "ready" || len(c.Seqs) < 3 {
				return false
			}
		}
		return true
	})
	d := debugOf(t, ctx)
	for topic, c := range d.Charts {
		if c.FirstDataX != nil && *c.FirstDataX < wiped-2 {
			t.Errorf("%s: point at %.0f, before the wipe at %.0f: stale data drawn", topic, *c.FirstDataX, wiped)
		}
		if c.Marks == 0 {
			t.Errorf("%s: the reset is not marked on the chart", topic)
		}
	}
	checkExact(t, srv2.URL, d, newEpoch, 3)
	screenshot(t, ctx, "livedash-wiped.png")
	check()
}

// bufferingProxy passes everything through, except that stream responses
// are held in a 1 MiB buffer (nginx with proxy_buffering on): headers go out,
// the body does not.
//
// passWS: WebSocket upgrades pass through (the proxy buffers only event
// streams); otherwise sockets are accepted and held as well: they open and
// never say anything.
func bufferingProxy(tb testing.TB, upstream string, passWS bool) string {
	tb.Helper()
	u, _ := url.Parse(upstream)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // aborted long polls are expected
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/ws" && !passWS {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			_, _, _ = c.Read(context.Background()) // until the client gives up
			return
		}
		if r.URL.Path != "/api/v1/stream" {
			rp.ServeHTTP(w, r) // WebSocket upgrades included
			return
		}
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.URL.Scheme, out.URL.Host = u.Scheme, u.Host
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		w.(http.Flusher).Flush()
		bw := bufio.NewWriterSize(w, 1<<20)
		// struct{io.Writer} hides bufio.Writer.ReadFrom, which would hand
		// the copy straight to the ResponseWriter and buffer nothing.
		_, _ = io.Copy(struct{ io.Writer }{bw}, resp.Body)
		_ = bw.Flush()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		_ = hs.Close()
	})
	return "http://" + ln.Addr().String()
}

// Stream and WebSocket both held by a buffering proxy → the page polls
// within 15 s and keeps updating.
func TestBrowserBufferingProxy(t *testing.T) {
	srv := startServer(t)
	waitCatalog(t, srv.URL, defaultTopics)
	proxy := bufferingProxy(t, srv.URL, false)
	ctx := newBrowser(t)
	check := watchConsole(t, ctx)
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(proxy+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "polling fallback", 15*time.Second, func() bool { return debugOf(t, ctx).State == "polling" })
	t.Logf("fell back to polling %v after navigation", time.Since(start).Round(time.Millisecond))
	before := debugOf(t, ctx).Charts["cpu"].LastSeq
	waitFor(t, "updates while polling", 10*time.Second, func() bool {
		d := debugOf(t, ctx)
		return d.Charts["cpu"].LastSeq > before && liveOnAll(d, 3)
	})
	d := debugOf(t, ctx)
	epoch, _ := statusOf(t, srv.URL)
	checkExact(t, srv.URL, d, epoch, 3)
	screenshot(t, ctx, "livedash-polling.png")
	check()
}

// A proxy that buffers text/event-stream but passes WebSocket upgrades: the
// page ends up on WebSocket with live, exact charts, and the badge says so.
// Hiding a chart takes its topic out of the subscription (a subscribe on the
// open socket); showing it again re-loads it and it goes on live, exact.
func TestBrowserBufferingProxyWebSocket(t *testing.T) {
	srv := startServer(t)
	waitCatalog(t, srv.URL, defaultTopics)
	proxy := bufferingProxy(t, srv.URL, true)
	ctx := newBrowser(t)
	check := watchConsole(t, ctx)
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(proxy+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "WebSocket", 15*time.Second, func() bool {
		d := debugOf(t, ctx)
		return d.State == "live" && d.Hub.Transport == "ws"
	})
	t.Logf("on WebSocket %v after navigation", time.Since(start).Round(time.Millisecond))
	waitFor(t, "live charts over WebSocket", 15*time.Second, func() bool { return liveOnAll(debugOf(t, ctx), 3) })
	epoch, _ := statusOf(t, srv.URL)
	checkExact(t, srv.URL, debugOf(t, ctx), epoch, 3)
	badge, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('status-state').textContent`))
	if err != nil || badge != "live · WebSocket" {
		t.Errorf("badge %q (%v), want it to say live · WebSocket", badge, err)
	}
	screenshot(t, ctx, "livedash-websocket.png")

	// Hide the memory chart: the subscription loses the topic.
	click := func(topic string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.livedash.panels().get('`+topic+`').hideBtn.click() || true`)); err != nil {
			t.Fatal(err)
		}
	}
	click("memory")
	waitFor(t, "memory unsubscribed", 10*time.Second, func() bool {
		d := debugOf(t, ctx)
		return d.Hub.Topics != nil && !slices.Contains(d.Hub.Topics, "memory") && slices.Contains(d.Hub.Topics, "cpu")
	})
	// Show it again: re-loaded once the connection carries it, then live.
	click("memory")
	waitFor(t, "memory subscribed again", 10*time.Second, func() bool { return debugOf(t, ctx).Hub.Topics == nil })
	waitFor(t, "memory live again", 15*time.Second, func() bool {
		d := debugOf(t, ctx)
		return d.Charts["memory"].State == "ready" && len(d.Charts["memory"].Seqs) >= 3 && liveOnAll(d, 3)
	})
	d := debugOf(t, ctx)
	if d.Hub.Transport != "ws" || d.Hub.Stats.Fallbacks != 1 {
		t.Errorf("transport %q after %d fallbacks, want ws after 1", d.Hub.Transport, d.Hub.Stats.Fallbacks)
	}
	checkExact(t, srv.URL, d, epoch, 3)
	check()
}

// Ten tabs of one browser profile → one stream on the server.
func TestBrowserTenTabsOneStream(t *testing.T) {
	srv := startServer(t)
	waitCatalog(t, srv.URL, defaultTopics)
	ctx := newBrowser(t)
	check := watchConsole(t, ctx)
	tabs := []context.Context{ctx}
	for range 9 {
		tctx, cancel := chromedp.NewContext(ctx)
		t.Cleanup(cancel)
		tabs = append(tabs, tctx)
	}
	for _, tctx := range tabs {
		if err := chromedp.Do(tctx, chromedp.Navigate(srv.URL+"/")); err != nil {
			t.Fatal(err)
		}
	}
	for i, tctx := range tabs {
		waitFor(t, fmt.Sprintf("tab %d live", i), 15*time.Second, func() bool {
			d := debugOf(t, tctx)
			return d.State == "live" && len(d.Charts["cpu"].Seqs) >= 2
		})
	}
	time.Sleep(time.Second)
	if n := streamsConnected(t, srv.URL); n != 1 {
		t.Errorf("server counts %v streams for ten tabs of one browser, want 1", n)
	}
	infos, err := chromedp.Targets(ctx)
	if err == nil {
		pages := 0
		for _, ti := range infos {
			if ti.Type == "page" {
				pages++
			}
		}
		t.Logf("browser has %d pages", pages)
	}
	check()
}

// XSS probe: pushed label values with markup, CR/LF and bidi controls show
// as text; nothing executes; the stream stays healthy.
func TestBrowserXSSProbe(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "livedash.yaml")
	const token = "test-push-token-0123456789"
	if err := os.WriteFile(cfgPath, []byte("push:\n  token: "+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, "--config", cfgPath)
	probes := []string{"<img src=x onerror=window.__x=1>", "a\n\ndata: x", "cr\rlf", "ls\u2028ps", "rlo\u202eevil"}
	push := func(v float64) {
		var samples []map[string]any
		for i, p := range probes {
			samples = append(samples, map[string]any{"name": "xss_probe", "labels": map[string]string{"probe": p, "i": strconv.Itoa(i)}, "value": v})
		}
		body := mustJSON(map[string]any{"samples": samples})
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/push/xss", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("push: %s: %s", resp.Status, b)
		}
	}
	push(1)
	ctx, check := openPage(t, srv.URL+"/")
	waitFor(t, "xss chart", 10*time.Second, func() bool { ok, err := chartsReady(ctx, []string{"xss"}); return err == nil && ok })
	for i := range 5 { // live frames too, not only the back-fill
		push(float64(i + 2))
		time.Sleep(300 * time.Millisecond)
	}
	waitFor(t, "live pushed frames", 10*time.Second, func() bool { return len(debugOf(t, ctx).Charts["xss"].Seqs) >= 3 })
	type probeResult struct {
		X      any
		Imgs   int
		Text   string
		Labels []string
	}
	r, err := chromedp.Run(ctx, chromedp.Evaluate[probeResult](`({
		x: window.__x === undefined ? null : window.__x,
		imgs: document.querySelectorAll('#panels img').length,
		text: document.getElementById('panels').textContent,
		labels: window.livedash.debug().charts.xss.labels })`))
	if err != nil {
		t.Fatal(err)
	}
	if r.X != nil {
		t.Errorf("window.__x = %v: pushed markup executed", r.X)
	}
	if r.Imgs != 0 {
		t.Errorf("%d img elements in the panels: markup was parsed", r.Imgs)
	}
	if !strings.Contains(r.Text, probes[0]) {
		t.Errorf("the probe is not shown as text; labels %q", r.Labels)
	}
	if len(r.Labels) != len(probes) {
		t.Errorf("labels %q, want %d series", r.Labels, len(probes))
	}
	// Topics that arrive after the page loaded still take their place:
	// known collectors first, in their order, then the rest.
	waitFor(t, "the cpu panel", 10*time.Second, func() bool { return debugOf(t, ctx).Charts["cpu"].State == "ready" })
	titles, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('.panel h2')].map((h) => h.firstChild.textContent)`))
	if err != nil || len(titles) < 2 || titles[0] != "CPU" || titles[len(titles)-1] != "xss" {
		t.Errorf("panel order %q (%v): want CPU first, the pushed topic last", titles, err)
	}
	screenshot(t, ctx, "livedash-xss.png")
	check()
}

// openPage opens url in a fresh browser, watching its console for errors
// (call check at the end of the test).
func openPage(t *testing.T, url string) (ctx context.Context, check func()) {
	t.Helper()
	ctx = newBrowser(t)
	check = watchConsole(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	return ctx, check
}

// Controls: window selector (re-load with an exact seam), pause/resume
// (frames keep flowing, drawing stops), legend click hides a series and the
// choice survives a re-load, and a phone-sized viewport has no sideways
// scroll.
func TestBrowserControls(t *testing.T) {
	srv := startServer(t)
	waitCatalog(t, srv.URL, defaultTopics)
	ctx, check := openPage(t, srv.URL+"/")
	ready := func() bool { ok, err := chartsReady(ctx, defaultTopics); return err == nil && ok }
	waitFor(t, "charts", 10*time.Second, ready)
	epoch, _ := statusOf(t, srv.URL)

	// Legend click on the CPU chart's first series.
	click(t, ctx, `document.querySelector('.panel .u-legend tr.u-series:nth-child(2) th')`)
	waitFor(t, "a hidden cpu series", 5*time.Second, func() bool {
		c := debugOf(t, ctx).Charts["cpu"]
		return len(c.Hidden) == 1 && c.DrawnHidden == 1
	})

	// Window 15 m: every chart re-loads, and the seam stays exact.
	click(t, ctx, `document.querySelector('#windows button[data-window="900"]')`)
	waitFor(t, "15 m window with live frames", 15*time.Second, func() bool {
		d := debugOf(t, ctx)
		return d.WindowSec == 900 && ready() && liveOnAll(d, 3)
	})
	d := debugOf(t, ctx)
	checkExact(t, srv.URL, d, epoch, 3)
	if c := d.Charts["cpu"]; len(c.Hidden) != 1 || c.DrawnHidden != 1 {
		t.Errorf("legend choice lost on re-load: hidden %q, drawn hidden %d", c.Hidden, c.DrawnHidden)
	}

	// Pause: frames keep arriving, nothing is drawn; resume draws at once.
	click(t, ctx, `document.getElementById('pause')`)
	waitFor(t, "paused", 2*time.Second, func() bool { return debugOf(t, ctx).State == "paused" })
	p0 := debugOf(t, ctx)
	// Two ticks of every default collector arrive while paused.
	waitFor(t, "frames while paused", 30*time.Second, func() bool {
		return debugOf(t, ctx).Frames >= p0.Frames+2*len(defaultTopics)
	})
	p1 := debugOf(t, ctx)
	if p1.Frames <= p0.Frames {
		t.Errorf("no frames while paused (%d → %d): data must keep flowing", p0.Frames, p1.Frames)
	}
	if p1.Renders+p1.Builds != p0.Renders+p0.Builds {
		t.Errorf("drew while paused: renders %d → %d", p0.Renders+p0.Builds, p1.Renders+p1.Builds)
	}
	badge, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('status').textContent`))
	if err != nil || !strings.Contains(badge, "paused") {
		t.Errorf("badge %q, want it to say paused (%v)", badge, err)
	}
	click(t, ctx, `document.getElementById('pause')`)
	waitFor(t, "drawing after resume", 3*time.Second, func() bool {
		d := debugOf(t, ctx)
		return d.State != "paused" && d.Renders+d.Builds > p1.Renders+p1.Builds
	})

	// Phone: 390 px wide, no horizontal scrolling.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	var w int
	waitFor(t, "the page laid out within a 390 px phone's width", 15*time.Second, func() bool {
		var err error
		w, err = chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		return err == nil && w <= 390
	})
	screenshot(t, ctx, "livedash-phone.png")
	check()
}

// A background tab draws nothing while frames keep arriving, and catches up
// in its first frame when shown again; the dark theme follows the system.
func TestBrowserHiddenTabAndTheme(t *testing.T) {
	srv := startServer(t)
	waitCatalog(t, srv.URL, defaultTopics)
	ctx, check := openPage(t, srv.URL+"/")
	waitFor(t, "charts", 10*time.Second, func() bool { ok, err := chartsReady(ctx, defaultTopics); return err == nil && ok })

	dark := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
		})
		return err
	})
	if err := chromedp.Do(ctx, dark); err != nil {
		t.Fatal(err)
	}
	bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`))
	if err != nil || bg != "rgb(18, 20, 23)" {
		t.Errorf("dark theme: body background %q (%v)", bg, err)
	}
	time.Sleep(1500 * time.Millisecond)
	screenshot(t, ctx, "livedash-dark.png")

	// A second tab in the same window hides the first.
	other, cancel := chromedp.NewContext(ctx, chromedp.WithNewWindow(false))
	defer cancel()
	if err := chromedp.Do(other, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	hidden := func() bool {
		h, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.hidden`))
		return err == nil && h
	}
	waitFor(t, "the first tab hidden", 5*time.Second, hidden)
	xmax := func() float64 {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.livedash.panels().get('cpu').u.scales.x.max`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	h0, x0 := debugOf(t, ctx), xmax()
	// Two ticks of every default collector arrive while hidden.
	waitFor(t, "frames while hidden", 30*time.Second, func() bool {
		return debugOf(t, ctx).Frames >= h0.Frames+2*len(defaultTopics)
	})
	h1, x1 := debugOf(t, ctx), xmax()
	if h1.Frames <= h0.Frames {
		t.Errorf("hidden tab got no frames (%d → %d): data must keep flowing", h0.Frames, h1.Frames)
	}
	if h1.Renders+h1.Builds != h0.Renders+h0.Builds || x1 != x0 {
		t.Errorf("hidden tab drew: renders %d → %d, x max %.0f → %.0f", h0.Renders+h0.Builds, h1.Renders+h1.Builds, x0, x1)
	}

	front := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.BringToFront, cdp.Empty{})
		return err
	})
	if err := chromedp.Do(ctx, front); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, "caught up after becoming visible", 3*time.Second, func() bool {
		last := debugOf(t, ctx).Charts["cpu"].LastX
		return !hidden() && last != nil && xmax() >= *last
	})
	t.Logf("visible again: charts current after %v", time.Since(start).Round(time.Millisecond))
	check()
}

// Without SharedWorker (Chrome on Android) the tab holds its own
// connection and behaves the same; ?noworker forces that path.
func TestBrowserNoSharedWorker(t *testing.T) {
	srv := startServer(t)
	waitCatalog(t, srv.URL, defaultTopics)
	ctx, check := openPage(t, srv.URL+"/?noworker")
	waitFor(t, "live charts without a worker", 10*time.Second, func() bool {
		ok, err := chartsReady(ctx, defaultTopics)
		d := debugOf(t, ctx)
		return err == nil && ok && d.State == "live" && liveOnAll(d, 3)
	})
	d := debugOf(t, ctx)
	if d.Transport != "page" {
		t.Errorf("transport %q, want page", d.Transport)
	}
	epoch, _ := statusOf(t, srv.URL)
	checkExact(t, srv.URL, d, epoch, 3)
	check()
}

// A reset while every chart is hidden: no chart has a cursor to ask the
// connection for, and the page must not keep asking from nowhere (each ask
// is answered "gap", and a gap re-loads and marks every chart: a loop).
// The reset is marked once; a chart shown again loads the new epoch and
// goes on live.
func TestBrowserResetWithEveryChartHidden(t *testing.T) {
	srv := startServer(t)
	waitCatalog(t, srv.URL, defaultTopics)
	ctx, check := openPage(t, srv.URL+"/")
	waitFor(t, "charts", 10*time.Second, func() bool { ok, err := chartsReady(ctx, defaultTopics); return err == nil && ok })
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`[...window.livedash.panels().values()].forEach((p) => p.hideBtn.click()) || true`)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := os.Remove(srv.Store); err != nil {
		t.Fatal(err)
	}
	srv2 := startServer(t, "--listen", srv.Addr, "--store", srv.Store)
	newEpoch, _ := statusOf(t, srv2.URL)
	waitFor(t, "the page on the new epoch", 30*time.Second, func() bool {
		return strings.HasPrefix(debugOf(t, ctx).LastID, newEpoch)
	})
	time.Sleep(2 * time.Second) // a loop would mark thousands of times by now
	for topic, c := range debugOf(t, ctx).Charts {
		if c.Marks > 2 {
			t.Errorf("%s: %d reset marks after one reset: the page kept re-loading", topic, c.Marks)
		}
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.livedash.panels().get('cpu').hideBtn.click() || true`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "cpu shown again, live on the new epoch", 30*time.Second, func() bool {
		c := debugOf(t, ctx).Charts["cpu"]
		return c.State == "ready" && c.Epoch == newEpoch && len(c.Seqs) >= 2
	})
	check()
}
