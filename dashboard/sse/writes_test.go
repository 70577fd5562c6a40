package sse

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"livedash/config"
	"livedash/dashboard/hub"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

// countingListener counts the Write calls (one per write(2)) and bytes the
// server makes on its accepted connections.
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.l.writes.Add(1)
	return c.Conn.Write(b)
}

// TestTickIsOneWrite: a tick of 8 frames of ~900 B (7 KiB, more than
// net/http's 4 KiB connection buffer) reaches an HTTP/1.1 stream as ONE write
// on the socket. With chunked encoding it took two (the chunk header fills
// the buffer first); the stream is sent unchunked and ends with the
// connection instead.
func TestTickIsOneWrite(t *testing.T) {
	st, err := bolt.Open(bolt.Options{Path: filepath.Join(t.TempDir(), "store.db"), NoSync: true, MaxFrames: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := testConfig()
	cfg.Heartbeat = config.Duration(time.Hour) // writes are counted exactly: no heartbeat between
	h := New(hub.New(st, cfg, hub.Options{}), Options{})
	st.OnCommit(h.Publish)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(cl) })
	defer func() {
		_ = h.Shutdown(t.Context())
		_ = srv.Close()
		wg.Wait()
	}()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(minWait))
	br := bufio.NewReader(conn)
	var head []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line = strings.TrimRight(line, "\r\n"); line == "" {
			break
		}
		head = append(head, line)
	}
	hdr := strings.ToLower(strings.Join(head, "\n"))
	if !strings.HasPrefix(hdr, "http/1.1 200") || strings.Contains(hdr, "transfer-encoding") ||
		!strings.Contains(hdr, "connection: close") || !strings.Contains(hdr, "content-type: text/event-stream") {
		t.Fatalf("response head:\n%s", strings.Join(head, "\n"))
	}
	// The body is the event stream itself: hello first.
	readEvent := func() string {
		var ev strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line == "\n" {
				return ev.String()
			}
			ev.WriteString(line)
		}
	}
	if ev := readEvent(); !strings.Contains(ev, "event: hello\n") {
		t.Fatalf("first event %q", ev)
	}

	pad := strings.Repeat("x", 800)
	for tick := range 5 {
		before := cl.writes.Load()
		batches := make([]store.Batch, 8)
		for i := range batches {
			batches[i] = store.Batch{Topic: fmt.Sprintf("t%d", i), Time: time.Now(), Samples: []store.Sample{{Name: "s", Labels: map[string]string{"p": pad}, Value: 1}}}
		}
		if _, err := st.Append(batches); err != nil {
			t.Fatal(err)
		}
		size := 0
		for i := range batches {
			ev := readEvent()
			if !strings.Contains(ev, "event: frame\n") || !strings.Contains(ev, fmt.Sprintf(`"topic":"t%d"`, i)) {
				t.Fatalf("tick %d event %d: %q", tick, i, ev)
			}
			size += len(ev) + 1
		}
		if size <= 4<<10 {
			t.Fatalf("tick of %d bytes: want more than net/http's 4 KiB buffer", size)
		}
		if got := cl.writes.Load() - before; got != 1 {
			t.Fatalf("tick %d (%d bytes): %d writes, want 1", tick, size, got)
		}
	}
}

// deadlineRW records the write deadlines set on it.
type deadlineRW struct {
	countingRW
	mu        sync.Mutex
	deadlines []time.Time
}

func (w *deadlineRW) SetWriteDeadline(d time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadlines = append(w.deadlines, d)
	return nil
}

// TestWriteDeadlineRenewal: the write deadline is renewed only when less than
// half of write_timeout is left, so every write has at least half of it.
func TestWriteDeadlineRenewal(t *testing.T) {
	var writes, bytes, target atomic.Int64
	target.Store(-1)
	w := &deadlineRW{countingRW: countingRW{hdr: http.Header{}, writes: &writes, bytes: &bytes, target: &target}}
	// A timeout of minutes, so that the margins below (10 s either side of
	// half of it) hold however slowly the writes run.
	const timeout = 2 * time.Minute
	s := &stream{timeout: timeout, w: w, rc: http.NewResponseController(w), flush: w.FlushError}

	start := time.Now()
	for range 10 {
		if _, err := s.writeRaw([]byte("data: x\n\n")); err != nil {
			t.Fatal(err)
		}
	}
	end := time.Now()
	if len(w.deadlines) != 1 || w.deadlines[0].Before(start.Add(timeout)) || w.deadlines[0].After(end.Add(timeout)) {
		t.Fatalf("after 10 writes: deadlines %v (writes from %v to %v)", w.deadlines, start, end)
	}
	// Under half of the timeout left: the next write renews it.
	s.deadline = time.Now().Add(timeout/2 - 10*time.Second)
	before := time.Now()
	if _, err := s.writeRaw([]byte("data: x\n\n")); err != nil {
		t.Fatal(err)
	}
	if len(w.deadlines) != 2 || w.deadlines[1].Before(before.Add(timeout)) {
		t.Fatalf("renewal: deadlines %v", w.deadlines)
	}
	// Over half left: kept.
	s.deadline = time.Now().Add(timeout/2 + 10*time.Second)
	if _, err := s.writeRaw([]byte("data: x\n\n")); err != nil {
		t.Fatal(err)
	}
	if len(w.deadlines) != 2 {
		t.Fatalf("renewed with more than half left: %v", w.deadlines)
	}
	if writes.Load() != 12 {
		t.Fatalf("writes %d", writes.Load())
	}
}
