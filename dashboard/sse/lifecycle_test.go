package sse

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"livedash/config"
	"livedash/dashboard/hub"
)

// rawStream opens a stream with its own transport (from the given local
// address, if any) and returns its body lines.
func rawStream(tb testing.TB, url, localIP string) (<-chan string, func()) {
	tb.Helper()
	d := &net.Dialer{}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	if resp.StatusCode != 200 {
		tb.Fatalf("status %d", resp.StatusCode)
	}
	lines := rawLines(resp.Body)
	closeFn := func() {
		cancel()
		resp.Body.Close()
		for range lines {
		}
		tr.CloseIdleConnections()
	}
	tb.Cleanup(closeFn)
	return lines, closeFn
}

// untilEOF collects lines until the body ends cleanly; it fails after d
// (at least minWait).
func untilEOF(tb testing.TB, lines <-chan string, d time.Duration) []string {
	tb.Helper()
	d = max(d, minWait)
	var got []string
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return got
			}
			got = append(got, l)
		case <-timer.C:
			tb.Fatalf("body not ended within %v; lines so far %q", d, got)
		}
	}
}

func retryOf(tb testing.TB, lines []string) time.Duration {
	tb.Helper()
	for i := len(lines) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(lines[i], "retry: "); ok {
			ms, err := strconv.Atoi(v)
			if err != nil {
				tb.Fatal(err)
			}
			return time.Duration(ms) * time.Millisecond
		}
	}
	tb.Fatalf("no retry: line in %q", lines)
	return 0
}

// TestOverLimit: over a limit, 200 + a long jittered retry:
// and a clean end of the body; counted by reason; other IPs unaffected.
func TestOverLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxStreams = 3
	cfg.MaxStreamsPerIP = 2
	e := newEnv(t, cfg)
	for range 2 {
		l, _ := rawStream(t, e.url, "127.0.0.1")
		recvWithin(t, l, 10*time.Second, "first line of an admitted stream")
	}
	lines, _ := rawStream(t, e.url, "127.0.0.1")
	got := untilEOF(t, lines, 3*time.Second)
	if r := retryOf(t, got); r < 20*time.Second || r > 40*time.Second {
		t.Fatalf("over-limit retry %v, want 20s–40s", r)
	}
	if n := e.metric(t, "rejected", hub.RejectPerIP); n != 1 {
		t.Fatalf("rejected{per_ip} = %v", n)
	}
	// Another source address is admitted, up to the global limit.
	l, _ := rawStream(t, e.url, "127.0.0.2")
	recvWithin(t, l, 10*time.Second, "first line of an admitted stream")
	lines, _ = rawStream(t, e.url, "127.0.0.3")
	retryOf(t, untilEOF(t, lines, 3*time.Second))
	if n := e.metric(t, "rejected", hub.RejectMaxStreams); n != 1 {
		t.Fatalf("rejected{max_streams} = %v", n)
	}
	if e.hub.Streams() != 3 {
		t.Fatalf("Streams() = %d", e.hub.Streams())
	}
}

func TestHeartbeat(t *testing.T) {
	cfg := testConfig()
	cfg.Heartbeat = config.Duration(100 * time.Millisecond)
	e := newEnv(t, cfg)
	e.appendN(t, "cpu", 2, 1)
	lines, _ := rawStream(t, e.url, "")
	// Three heartbeats of a 100 ms period: 10 s is far below the default
	// period's 45 s, far above what scheduling delays add.
	deadline := time.After(10 * time.Second)
	var hbs []int64 // the server's send times, Unix ms
	for len(hbs) < 3 {
		select {
		case l := <-lines:
			if rest, ok := strings.CutPrefix(l, ": hb "); ok {
				f := strings.Fields(rest)
				if len(f) != 2 || f[0] != e.store.Head().String() {
					t.Fatalf("heartbeat %q, head %s", l, e.store.Head())
				}
				ms, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil || time.Since(time.UnixMilli(ms)) > time.Minute {
					t.Fatalf("heartbeat time %q", l)
				}
				hbs = append(hbs, ms)
			}
		case <-deadline:
			t.Fatalf("only %d heartbeats", len(hbs))
		}
	}
	// An idle stream gets a heartbeat once 3/4 of the period passed since its
	// last write: never two sooner than that, by the server's own clock.
	for i := 1; i < len(hbs); i++ {
		if gap := hbs[i] - hbs[i-1]; gap < 74 {
			t.Fatalf("heartbeats %d ms apart, want at least 3/4 of the 100 ms period", gap)
		}
	}
}

func TestMaxLifetime(t *testing.T) {
	cfg := testConfig()
	cfg.MaxLifetime = config.Duration(300 * time.Millisecond)
	e := newEnv(t, cfg)
	start := time.Now()
	lines, _ := rawStream(t, e.url, "")
	got := untilEOF(t, lines, 15*time.Second)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("ended after %v, want ≥ 270ms", d)
	}
	retryOf(t, got)
	waitFor(t, 10*time.Second, "lifetime disconnect counted", func() bool { return e.metric(t, "disconnects", hub.DisconnectLifetime) == 1 })
}

// TestShutdownThousandStreams: 1,000 open streams are closed
// spread over the drain window, each with a final retry:, and Shutdown
// returns once they are all closed.
func TestShutdownThousandStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 streams")
	}
	const n = 1000
	cfg := testConfig()
	cfg.DrainWindow = config.Duration(time.Second)
	e := newEnv(t, cfg)
	tr := &http.Transport{MaxIdleConnsPerHost: -1}
	defer tr.CloseIdleConnections()
	type result struct {
		retry bool
		end   time.Time
		err   error
	}
	results := make(chan result, n)
	// Each client reports once on ready: nil at its first data line, or why
	// its stream ended (or failed) before one.
	ready := make(chan error, n)
	for range n {
		go func() {
			resp, err := (&http.Client{Transport: tr}).Get(e.url)
			if err != nil {
				ready <- err
				results <- result{err: err}
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			var r result
			first := true
			for {
				line, err := br.ReadString('\n')
				if first && strings.HasPrefix(line, "data:") {
					first = false
					ready <- nil
				}
				if err != nil {
					if err != io.EOF {
						r.err = err
					}
					if first {
						ready <- fmt.Errorf("stream ended before its first data line: %v", err)
					}
					break
				}
				if strings.HasPrefix(line, "retry: ") && !first {
					r.retry = true
				}
			}
			r.end = time.Now()
			results <- r
		}()
	}
	readyBy := time.NewTimer(60 * time.Second)
	defer readyBy.Stop()
	for i := range n {
		select {
		case err := <-ready:
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
		case <-readyBy.C:
			t.Fatalf("only %d of %d streams got their first event within 60s", i, n)
		}
	}
	waitFor(t, 5*time.Second, "1000 streams", func() bool { return e.hub.Streams() == n })

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.hub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	// The last stream is due at 999/1000 of the window: Shutdown cannot
	// return sooner, however fast the machine.
	if took < cfg.DrainWindow.D()*(n-1)/n {
		t.Fatalf("shutdown took %v: streams were not paced over the %v window", took, cfg.DrainWindow)
	}
	var ends []time.Duration
	endBy := time.NewTimer(30 * time.Second)
	defer endBy.Stop()
	for i := range n {
		var r result
		select {
		case r = <-results:
		case <-endBy.C:
			t.Fatalf("only %d of %d streams ended within 30s of shutdown", i, n)
		}
		if r.err != nil || !r.retry {
			t.Fatalf("client: err %v, final retry seen %v", r.err, r.retry)
		}
		ends = append(ends, r.end.Sub(start))
	}
	slices.Sort(ends)
	// Spread, as the clients saw it: 80 % of the closes span most of the
	// window (0.8 s when nothing is delayed); a quarter of it still tells
	// pacing from closing all at once, and a stall of the client's
	// goroutines can only bunch a part of them.
	if spread := ends[9*n/10] - ends[n/10]; spread < cfg.DrainWindow.D()/4 {
		t.Fatalf("closes not spread over the window: p10 %v p90 %v", ends[n/10], ends[9*n/10])
	}
	if got := e.metric(t, "disconnects", hub.DisconnectShutdown); got != n {
		t.Fatalf("disconnects{shutdown} = %v", got)
	}
	// New streams after shutdown are turned away with a retry: hint.
	lines, _ := rawStream(t, e.url, "")
	retryOf(t, untilEOF(t, lines, 2*time.Second))
	t.Logf("shutdown of %d streams took %v (window %v)", n, took, cfg.DrainWindow)
}

// TestConnectDisconnectCycles: 1,000 streams opened and dropped by the
// client return goroutines and heap to their baseline.
func TestConnectDisconnectCycles(t *testing.T) {
	e := newEnv(t, testConfig())
	cycle := func() {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"?topics=cpu", nil)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		br := bufio.NewReader(resp.Body)
		if _, err := br.ReadString('\n'); err != nil {
			t.Error(err)
		}
		cancel()
		resp.Body.Close()
	}
	settle := func() (int, uint64) {
		waitFor(t, 5*time.Second, "streams gone", func() bool { return e.hub.Streams() == 0 })
		var ms runtime.MemStats
		for range 3 {
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.HeapInuse
	}
	for range 20 {
		cycle()
	}
	g0, heap0 := settle()
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				cycle()
				if _, err := e.store.Append([]ringBatch{{Topic: "cpu", Time: time.Now(), Samples: []ringSample{{Name: "v", Value: 1}}}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	waitGroupWithin(t, &wg, 5*time.Minute, "1,000 connect/disconnect cycles")
	var g1 int
	var heap1 uint64
	deadline := time.Now().Add(15 * time.Second)
	for {
		g1, heap1 = settle()
		if g1 <= g0 || time.Now().After(deadline) {
			break
		}
	}
	if g1 > g0 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines %d → %d\n%s", g0, g1, buf[:runtime.Stack(buf, true)])
	}
	if heap1 > heap0+4<<20 {
		t.Fatalf("heap in use %d → %d bytes", heap0, heap1)
	}
	if got := e.metric(t, "disconnects", hub.DisconnectClient); got < 1000 {
		t.Fatalf("disconnects{client} = %v", got)
	}
	t.Logf("goroutines %d → %d, heap in use %d KiB → %d KiB", g0, g1, heap0>>10, heap1>>10)
}

// TestNeverReadingClient: a raw TCP client that sends the
// request and never reads is cut at the write deadline while 100 healthy
// clients receive every frame; its goroutines end. (That they are served
// while it is stuck, not after its cut, is TestStuckClientHoldsNobody.)
func TestNeverReadingClient(t *testing.T) {
	cfg := testConfig()
	// Short enough to cut the stuck client while the test runs, long enough
	// that a stall of a loaded machine does not cut a healthy one.
	cfg.WriteTimeout = config.Duration(5 * time.Second)
	cfg.QueueSize = 1 << 20 // so that the deadline, not the lag, cuts it
	e := newEnv(t, cfg)

	// The stuck client: a tiny receive buffer, subscribed to big frames.
	stuck := dialTinyBuffer(t, e.srv.Listener.Addr().String())
	defer stuck.Close()
	fmt.Fprintf(stuck, "GET /api/v1/stream?topics=big HTTP/1.1\r\nHost: x\r\n\r\n")

	const healthy = 100
	clients := make([]*client, healthy)
	for i := range clients {
		clients[i] = dial(t, e.url, "topics=small", "")
		clients[i].next(t, 5*time.Second) // hello
	}
	waitFor(t, 5*time.Second, "101 streams", func() bool { return e.hub.Streams() == healthy+1 })

	var worst time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	const ticks = 60
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range ticks {
				ev, err := c.nextWithin(30 * time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				sent, _ := strconv.ParseInt(strings.TrimPrefix(ev.Data[strings.Index(ev.Data, `"value":`):], `"value":`)[:13], 10, 64)
				lat := time.Since(time.UnixMilli(sent))
				mu.Lock()
				worst = max(worst, lat)
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	var cutAt time.Duration
	for i := range ticks {
		e.appendN(t, "big", 4, 64<<10)
		appendValue(t, e, "small", float64(time.Now().UnixMilli()))
		if cutAt == 0 && e.metric(t, "disconnects", hub.DisconnectWriteDeadline) == 1 {
			cutAt = time.Since(start)
		}
		_ = i
		time.Sleep(20 * time.Millisecond)
	}
	waitGroupWithin(t, &wg, time.Minute, "healthy clients receiving every tick")
	waitFor(t, 30*time.Second, "stuck client cut", func() bool { return e.metric(t, "disconnects", hub.DisconnectWriteDeadline) == 1 })
	if cutAt == 0 {
		cutAt = time.Since(start)
	}
	// The cut is counted when the subscriber's Run returns; it is
	// unregistered after its connection is closed, a moment later.
	waitFor(t, 15*time.Second, "only the healthy streams left after the cut", func() bool { return e.hub.Streams() == healthy })
	// A ceiling that only a hub stalled for many write deadlines reaches.
	if worst > 10*time.Second {
		t.Fatalf("healthy clients' worst latency %v while a client hung", worst)
	}
	t.Logf("stuck client cut after %v of publishing; healthy worst latency %v", cutAt, worst)
}

func appendValue(tb testing.TB, e *env, topic string, v float64) {
	tb.Helper()
	if _, err := e.store.Append([]ringBatch{{Topic: topic, Time: time.Now(), Samples: []ringSample{{Name: "v", Value: v}}}}); err != nil {
		tb.Fatal(err)
	}
}

// TestServerShutdownWaitsForHijackedStreams: HTTP/1.1 streams are hijacked
// (invisible to http.Server.Shutdown), so the server waits for the hub's
// Shutdown, which returns only after every stream got its final retry:, and
// no goroutine or connection is left behind.
func TestServerShutdownWaitsForHijackedStreams(t *testing.T) {
	cfg := testConfig()
	cfg.DrainWindow = config.Duration(300 * time.Millisecond)
	e := newEnv(t, cfg)
	const n = 5
	var all []<-chan string
	for range n {
		lines, _ := rawStream(t, e.url, "")
		all = append(all, lines)
	}
	waitFor(t, 2*time.Second, "streams", func() bool { return e.hub.Streams() == n })
	type end struct {
		lines []string
		at    time.Time
	}
	ends := make(chan end, n)
	for _, l := range all {
		go func() {
			var got []string
			for s := range l {
				got = append(got, s)
			}
			ends <- end{got, time.Now()}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hubDone := make(chan error, 1)
	go func() { hubDone <- e.hub.Shutdown(ctx) }()
	if err := e.srv.Config.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err, _ := recvWithin(t, hubDone, 30*time.Second, "hub shutdown"); err != nil {
		t.Fatal(err)
	}
	// A stream is unregistered only after its connection is closed: none
	// is left when Shutdown returns, so every connection is closed by then.
	if n := e.hub.Streams(); n != 0 {
		t.Fatalf("after shutdown: %d streams registered", n)
	}
	for range n {
		en, _ := recvWithin(t, ends, 10*time.Second, "a stream's end after Shutdown returned")
		if k := len(en.lines); k < 2 || !strings.HasPrefix(en.lines[k-2], "retry: ") {
			t.Fatalf("stream did not end with a retry: hint: %q", en.lines)
		}
	}
}
