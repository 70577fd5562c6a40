package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startBaseline serves the baseline on 127.0.0.1:0; stop ends it and
// returns what serveBaseline returned.
func startBaseline(t *testing.T, c baselineConfig) (base string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveBaseline(ctx, ln, c) }()
	var once sync.Once
	var serveErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("serveBaseline did not return after its context ended")
			}
		})
		return serveErr
	}
	t.Cleanup(func() { _ = stop() })
	return "http://" + ln.Addr().String(), stop
}

var baselineEvent = regexp.MustCompile(`^id: ([0-9]+)\nevent: frame\ndata: \{"ts":([0-9]+),"p":"x*"\}\n\n$`)

// The wire format: headers, the event shape and size, ids consecutive
// across ticks, and the stream ends at shutdown.
func TestBaselineStream(t *testing.T) {
	const size = 150
	base, stop := startBaseline(t, baselineConfig{rate: 100, batch: 3, size: size})
	resp, err := http.Get(base + "/any/path")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	br := bufio.NewReader(resp.Body)
	var last uint64
	for i := range 10 { // more than three ticks
		var ev strings.Builder
		for !strings.HasSuffix(ev.String(), "\n\n") {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			ev.WriteString(line)
		}
		m := baselineEvent.FindStringSubmatch(ev.String())
		if m == nil || ev.Len() != size {
			t.Fatalf("event %d (%d bytes, want %d): %q", i, ev.Len(), size, ev.String())
		}
		id, _ := strconv.ParseUint(m[1], 10, 64)
		ts, _ := strconv.ParseInt(m[2], 10, 64)
		if i > 0 && id != last+1 {
			t.Fatalf("id %d after %d", id, last)
		}
		last = id
		if age := time.Since(time.UnixMilli(ts)); age < -time.Second || age > time.Minute {
			t.Fatalf("ts %d is %v old", ts, age)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("the stream did not end cleanly at shutdown: %v", err)
	}
}

// The load tool's own client reads the baseline without gaps, duplicates
// or frames lacking a ts, and its stream ends at shutdown.
func TestBaselineWithLoadClient(t *testing.T) {
	base, stop := startBaseline(t, baselineConfig{rate: 200, batch: 2, size: 300})
	target, _ := url.Parse(base + "/")
	c := newTestClient()
	c.b = &bench{o: options{sources: 1}, target: target}
	connected := make(chan struct{})
	ended := make(chan error, 1)
	go func() { ended <- c.stream(t.Context(), false, func() { close(connected) }) }()
	select {
	case <-connected:
	case err := <-ended:
		t.Fatalf("the stream ended before connecting: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not connected within 30s")
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.st.Load().frames.Load() < 40 {
		if time.Now().After(deadline) {
			t.Fatalf("%d frames after 30s", c.st.Load().frames.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if err != io.EOF {
			t.Fatalf("stream ended with %v, want io.EOF", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stream did not end at shutdown")
	}
	st := c.st.Load()
	if st.gaps.Load() != 0 || st.dups.Load() != 0 || st.noTS.Load() != 0 || st.resets.Load() != 0 {
		t.Fatalf("frames %d gaps %d dups %d no_ts %d resets %d", st.frames.Load(), st.gaps.Load(), st.dups.Load(), st.noTS.Load(), st.resets.Load())
	}
	// A ceiling that catches a latency computed wrong (units, clocks), not
	// a slow machine.
	if p := st.percentile(.99); p > 30*time.Second {
		t.Fatalf("latency p99 %v", p)
	}
}

// blockingWriter is a ResponseWriter whose writes wait for release.
type blockingWriter struct {
	header  http.Header
	writing chan struct{} // one value per Write that started
	release chan struct{}
}

func (w *blockingWriter) Header() http.Header { return w.header }
func (w *blockingWriter) WriteHeader(int)     {}
func (w *blockingWriter) Flush()              {}
func (w *blockingWriter) Write(p []byte) (int, error) {
	w.writing <- struct{}{}
	<-w.release
	return len(p), nil
}

// A stream that falls more than baselineQueue events behind is cut when it
// next wakes.
func TestBaselineCutsLaggards(t *testing.T) {
	h := &baselineHub{done: make(chan struct{})}
	h.tail.Store(&node{ready: make(chan struct{})})
	w := &blockingWriter{header: http.Header{}, writing: make(chan struct{}, 1), release: make(chan struct{})}
	r := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/", nil)
	served := make(chan struct{})
	go func() { defer close(served); h.ServeHTTP(w, r) }()
	// Ticks until the stream is blocked writing one, then more than
	// baselineQueue events while it is.
	var id uint64
	for wrote := false; !wrote; {
		id++
		h.publish([]byte("tick"), id)
		select {
		case <-w.writing:
			wrote = true
		case <-time.After(10 * time.Millisecond):
		}
	}
	for range baselineQueue + 1 {
		id++
		h.publish([]byte("x"), id)
	}
	close(w.release)
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("a stream more than baselineQueue events behind was not cut")
	}
	select {
	case <-w.writing:
		t.Fatal("the laggard wrote again instead of being cut")
	default:
	}
}

// Only loopback listen addresses and bounded flags are accepted; a
// cancelled context ends the subcommand cleanly.
func TestServeBaselineFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-addr", "0.0.0.0:0"},
		{"-addr", ":0"},
		{"-addr", "192.0.2.1:0"},
		{"-rate", "0"},
		{"-rate", "NaN"},
		{"-rate", "1e-300"},
		{"-rate", "2000"},
		{"-batch", "0"},
		{"-batch", "1025"},
		{"-size", "0"},
		{"-batch", "1024", "-size", "1048576"},
		{"extra"},
	} {
		err := run(t.Context(), append([]string{"serve-baseline", "-addr", "127.0.0.1:0"}, args...), io.Discard, io.Discard)
		if err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := run(ctx, []string{"serve-baseline", "-addr", "localhost:0"}, io.Discard, io.Discard); err != nil {
		t.Fatalf("serve-baseline ended by its context: %v", err)
	}
}
