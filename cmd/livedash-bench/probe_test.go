package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// sseServer streams a frame every 10 ms, with its time in "ts", until the
// client goes away.
func sseServer(t *testing.T) *url.URL {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: hello\ndata: {\"epoch\":\"e\"}\n\n")
		w.(http.Flusher).Flush()
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
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL + "/api/v1/stream")
	return u
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// The probe process's protocol: connected, then a window per "mark", all
// reported at "report"; anything else is an error.
func TestProbeProtocol(t *testing.T) {
	u := sseServer(t)
	for _, tc := range []struct {
		name, script string
		windows      int
		fails        bool
	}{
		{"two windows", "mark\n|mark\n|report\n", 2, false},
		{"unknown command", "mark\n|go\n", 0, true},
		{"stdin closed", "mark\n|", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			old := stdin
			stdin = pr
			defer func() { stdin = old }()
			b := &bench{o: options{clients: 3, sources: 2}, target: u}
			out := &lockedBuf{}
			done := make(chan error, 1)
			go func() { done <- b.probe(context.Background(), out) }()
			deadline := time.Now().Add(30 * time.Second)
			for !strings.HasPrefix(out.String(), "probe connected\n") {
				if time.Now().After(deadline) {
					t.Fatalf("not connected: %q", out.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			for _, cmd := range strings.Split(tc.script, "|") {
				if cmd == "" {
					_ = pw.Close()
					continue
				}
				if _, err := io.WriteString(pw, cmd); err != nil {
					t.Fatal(err)
				}
				time.Sleep(150 * time.Millisecond)
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("probe did not return within 30s of its script")
			}
			_ = pw.Close()
			if tc.fails {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")[1:]
			if len(lines) != tc.windows {
				t.Fatalf("%d windows reported, want %d: %q", len(lines), tc.windows, out.String())
			}
			for _, l := range lines {
				w, err := parseProbeWindow(l)
				if err != nil {
					t.Fatal(err)
				}
				// 3 clients × ~15 frames in 150 ms undelayed; at least one
				// each on a loaded machine.
				if w.frames < 3 || w.gaps != 0 || w.dups != 0 || w.elapsed < 100*time.Millisecond || w.p99 > w.max {
					t.Fatalf("window %+v from %q", w, l)
				}
			}
		})
	}
}

func TestParseProbeWindow(t *testing.T) {
	w, err := parseProbeWindow("window 2 1000000000 8000000 70000000 90000000 1234 1 2")
	if err != nil || w != (probeWindow{time.Second, 8 * time.Millisecond, 70 * time.Millisecond, 90 * time.Millisecond, 1234, 1, 2}) {
		t.Fatalf("%+v, %v", w, err)
	}
	for _, bad := range []string{"", "window", "window 1 2 3 4 5 6 7", "window 1 2 3 4 5 6 7 8 9", "windows 1 2 3 4 5 6 7 8", "window 1 2 3 -4 5 6 7 8", "window 1 2 3 x 5 6 7 8"} {
		if _, err := parseProbeWindow(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
