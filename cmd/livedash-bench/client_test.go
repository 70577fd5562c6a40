package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTestClient() *client {
	st := &atomic.Pointer[stats]{}
	st.Store(newStats())
	return &client{st: st}
}

// The parser counts frames, gaps, duplicates and resets from the IDs,
// takes the resume cursor from dispatched events only, and reads the
// latency from "ts" (counting frames without one), with the event split
// across small reads.
func TestClientRead(t *testing.T) {
	ts := time.Now().Add(-50 * time.Millisecond).UnixMilli()
	frame := func(id string) string {
		return fmt.Sprintf("id: %s\nevent: frame\ndata: {\"id\":%q,\"topic\":\"t\",\"ts\":%d,\"samples\":[]}\n\n", id, id, ts)
	}
	stream := "retry: 1000\nevent: hello\ndata: {\"epoch\":\"e\"}\n\n" +
		": hb e-1 123\n\n" +
		frame("e-1") + frame("e-2") + frame("e-5") + // gap of 2
		frame("e-5") + // duplicate
		"event: reset\ndata: {\"reason\":\"too_far\"}\n\n" +
		frame("e-9") + // after a reset: no gap
		frame("f-1") + // new epoch: no gap, no duplicate
		"id: f-2\nevent: frame\ndata: {\"topic\":\"t\"}\n\n" + // no ts
		"id: e-77\nevent: frame\n" // not dispatched: no blank line
	for _, size := range []int{16, 4096} {
		c := newTestClient()
		err := c.read(bufio.NewReaderSize(&slowReader{s: stream, n: 7}, size))
		if err != io.EOF {
			t.Fatalf("read: %v", err)
		}
		st := c.st.Load()
		if st.frames.Load() != 7 || st.gaps.Load() != 2 || st.dups.Load() != 1 || st.resets.Load() != 1 || st.noTS.Load() != 1 {
			t.Fatalf("buffer %d: frames %d gaps %d dups %d resets %d noTS %d", size,
				st.frames.Load(), st.gaps.Load(), st.dups.Load(), st.resets.Load(), st.noTS.Load())
		}
		if string(c.lastID) != "f-2" || c.seq.Load() != 2 || c.epoch != "f" {
			t.Fatalf("buffer %d: lastID %q seq %d epoch %q", size, c.lastID, c.seq.Load(), c.epoch)
		}
		if p := st.percentile(.5); p < 50*time.Millisecond || p > 10*time.Second {
			t.Fatalf("buffer %d: latency %v, want ≥ 50ms", size, p)
		}
	}
}

// slowReader returns at most n bytes per Read.
type slowReader struct {
	s string
	n int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.s)
	r.s = r.s[k:]
	return k, nil
}

// FuzzClientRead: any byte stream is parsed without panicking, and the
// counters stay consistent (every gap or duplicate belongs to a frame).
func FuzzClientRead(f *testing.F) {
	f.Add("id: e-1\nevent: frame\ndata: {\"ts\":1}\n\nid: e-3\ndata: {\"ts\":2}\n\n")
	f.Add("event: reset\ndata: x\n\nid: 18446744073709551615\ndata: \"ts\":99999999999999999999\n\n")
	f.Add(": hb\n\nid:\nevent:\ndata:\n\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		c := newTestClient()
		_ = c.read(bufio.NewReaderSize(strings.NewReader(in), 16))
		st := c.st.Load()
		if st.frames.Load() < st.dups.Load() || st.frames.Load() < 0 || st.noTS.Load() > st.frames.Load() {
			t.Fatalf("frames %d dups %d noTS %d", st.frames.Load(), st.dups.Load(), st.noTS.Load())
		}
	})
}

// A client resumes from the last ID it saw, over both body framings, and
// keeps its read buffers across reconnects.
func TestClientResumesWithItsBuffers(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	// Three frames after the request's Last-Event-ID, then the end.
	frames := func(r *http.Request) string {
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		mu.Unlock()
		from := 0
		if id := r.Header.Get("Last-Event-ID"); id != "" {
			fmt.Sscanf(id, "e-%d", &from)
		}
		var b strings.Builder
		for seq := from + 1; seq <= from+3; seq++ {
			fmt.Fprintf(&b, "id: e-%d\nevent: frame\ndata: {\"ts\":%d}\n\n", seq, time.Now().UnixMilli())
		}
		return b.String()
	}
	chunked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, frames(r))
		w.(http.Flusher).Flush() // no length: a chunked body
	}))
	defer chunked.Close()
	// Unchunked, as livedash writes a stream on its own connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raw := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"+frames(r))
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go raw.Serve(ln)
	defer raw.Close()

	for name, base := range map[string]string{"chunked": chunked.URL, "unchunked": "http://" + ln.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			mu.Lock()
			lastIDs = nil
			mu.Unlock()
			target, _ := url.Parse(base + "/api/v1/stream")
			c := newTestClient()
			c.b = &bench{o: options{sources: 1}, target: target}
			var brs []*bufio.Reader
			for range 2 {
				if err := c.stream(t.Context(), true, nil); err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("stream: %v", err)
				}
				brs = append(brs, c.br, c.chunkBR)
			}
			st := c.st.Load()
			if st.frames.Load() != 6 || st.gaps.Load() != 0 || st.dups.Load() != 0 || string(c.lastID) != "e-6" {
				t.Fatalf("frames %d gaps %d dups %d lastID %q", st.frames.Load(), st.gaps.Load(), st.dups.Load(), c.lastID)
			}
			mu.Lock()
			got := slices.Clone(lastIDs)
			mu.Unlock()
			if !slices.Equal(got, []string{"", "e-3"}) {
				t.Fatalf("Last-Event-ID sent: %q, want [\"\" \"e-3\"]", got)
			}
			if brs[0] == nil || brs[0] != brs[2] || brs[1] != brs[3] {
				t.Fatalf("read buffers not kept across reconnects: %p %p / %p %p", brs[0], brs[1], brs[2], brs[3])
			}
			for _, br := range brs[:2] {
				if br != nil && br.Size() != readBufSize {
					t.Fatalf("a read buffer of %d bytes, want %d", br.Size(), readBufSize)
				}
			}
			if (brs[1] != nil) != (name == "chunked") {
				t.Fatalf("%s: chunked reader %p", name, brs[1])
			}
		})
	}
}
