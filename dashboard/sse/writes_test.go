package sse

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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

// deadlineConn is a connection that discards what is written to it and
// records the write deadlines set on it; nothing else of it is used.
type deadlineConn struct {
	net.Conn
	writes    int
	mu        sync.Mutex
	deadlines []time.Time
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	c.writes++
	return len(b), nil
}

func (c *deadlineConn) SetWriteDeadline(d time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadlines = append(c.deadlines, d)
	return nil
}

// TestWriteDeadlineRenewal: on a hijacked connection (HTTP/1.1) the write
// deadline is renewed only when less than half of write_timeout is left,
// so every write has at least half of it; once the stream is interrupted,
// no renewal undoes the short deadline.
func TestWriteDeadlineRenewal(t *testing.T) {
	c := &deadlineConn{}
	// A timeout of minutes, so that the margins below (10 s either side of
	// half of it) hold however slowly the writes run.
	const timeout = 2 * time.Minute
	s := &stream{timeout: timeout, conn: c}

	start := time.Now()
	for range 10 {
		if _, err := s.writeRaw([]byte("data: x\n\n")); err != nil {
			t.Fatal(err)
		}
	}
	end := time.Now()
	if len(c.deadlines) != 1 || c.deadlines[0].Before(start.Add(timeout)) || c.deadlines[0].After(end.Add(timeout)) {
		t.Fatalf("after 10 writes: deadlines %v (writes from %v to %v)", c.deadlines, start, end)
	}
	// Under half of the timeout left: the next write renews it.
	s.deadline = time.Now().Add(timeout/2 - 10*time.Second)
	before := time.Now()
	if _, err := s.writeRaw([]byte("data: x\n\n")); err != nil {
		t.Fatal(err)
	}
	if len(c.deadlines) != 2 || c.deadlines[1].Before(before.Add(timeout)) {
		t.Fatalf("renewal: deadlines %v", c.deadlines)
	}
	// Over half left: kept.
	s.deadline = time.Now().Add(timeout/2 + 10*time.Second)
	if _, err := s.writeRaw([]byte("data: x\n\n")); err != nil {
		t.Fatal(err)
	}
	if len(c.deadlines) != 2 {
		t.Fatalf("renewed with more than half left: %v", c.deadlines)
	}
	// Interrupted: a second at most, and a write that would renew keeps it.
	before = time.Now()
	s.Interrupt()
	if len(c.deadlines) != 3 || c.deadlines[2].After(time.Now().Add(time.Second)) || c.deadlines[2].Before(before.Add(time.Second)) {
		t.Fatalf("interrupt: deadlines %v", c.deadlines)
	}
	s.deadline = time.Now()
	if _, err := s.writeRaw([]byte("data: x\n\n")); err != nil {
		t.Fatal(err)
	}
	if len(c.deadlines) != 3 {
		t.Fatalf("renewed after the interrupt: %v", c.deadlines)
	}
	if c.writes != 13 {
		t.Fatalf("writes %d", c.writes)
	}
}

// watchRW is a response writer that records the write deadlines set on
// it; while block is set, a write blocks until a deadline that has passed
// is set, and fails as a write past its deadline does.
type watchRW struct {
	hdr       http.Header
	block     atomic.Bool
	cut       chan struct{} // gets a value when a passed deadline is set
	mu        sync.Mutex
	deadlines []time.Time
	writes    int
}

func (w *watchRW) Header() http.Header { return w.hdr }
func (w *watchRW) WriteHeader(int)     {}
func (w *watchRW) FlushError() error   { return nil }
func (w *watchRW) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.writes++
	w.mu.Unlock()
	if !w.block.Load() {
		return len(b), nil
	}
	<-w.cut
	return 0, os.ErrDeadlineExceeded
}

func (w *watchRW) SetWriteDeadline(d time.Time) error {
	w.mu.Lock()
	w.deadlines = append(w.deadlines, d)
	w.mu.Unlock()
	if !d.IsZero() && !d.After(time.Now()) {
		select {
		case w.cut <- struct{}{}:
		default:
		}
	}
	return nil
}

func (w *watchRW) setDeadlines() []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.deadlines)
}

// TestWriteDeadlineWatchdog: through net/http (HTTP/2) writes set no write
// deadline of net/http's, so none is left to pass on an idle stream (Go's
// HTTP/2 server resets the stream when one does); the stream's own timer
// cuts a write still in progress at the deadline by setting a deadline that
// has passed, and leaves alone an idle stream and a write whose deadline a
// renewal moved on. Interrupt's deadline is not undone by later writes, and
// once the handler returns (finish) the timer touches nothing.
func TestWriteDeadlineWatchdog(t *testing.T) {
	w := &watchRW{hdr: http.Header{}, cut: make(chan struct{}, 1)}
	const timeout = 200 * time.Millisecond
	s := &stream{timeout: timeout, w: w, rc: http.NewResponseController(w), flush: w.FlushError}

	for range 3 {
		if _, err := s.writeRaw([]byte("data: x\n\n")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * timeout) // the timer fires on the idle stream
	if d := w.setDeadlines(); len(d) != 0 {
		t.Fatalf("deadlines set by writes that completed, or on the idle stream: %v", d)
	}

	// A write that blocks is cut by the timer, a whole timeout after it
	// started (the deadline had passed while idle: the write renewed it).
	w.block.Store(true)
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		_, err := s.writeRaw([]byte("data: x\n\n"))
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("stuck write: %v", err)
		}
	case <-time.After(minWait):
		t.Fatalf("stuck write not cut within %v", minWait)
	}
	took := time.Since(start)
	if d := w.setDeadlines(); len(d) != 1 || d[0].Before(start.Add(timeout)) || d[0].After(time.Now()) || took < timeout {
		t.Fatalf("stuck write cut after %v; deadlines %v (write from %v)", took, d, start)
	}
	w.block.Store(false)

	// Interrupted: its deadline, a second at most, is the only one set.
	before := time.Now()
	s.Interrupt()
	if _, err := s.writeRaw([]byte("data: x\n\n")); err != nil {
		t.Fatal(err)
	}
	if d := w.setDeadlines(); len(d) != 2 || d[1].Before(before.Add(timeout)) || d[1].After(time.Now().Add(timeout)) {
		t.Fatalf("interrupted: deadlines %v", d)
	}

	// A firing that a renewal overtook finds the deadline ahead of it, and
	// sets nothing.
	s.mu.Lock()
	s.writing, s.deadline = true, time.Now().Add(time.Minute)
	s.mu.Unlock()
	s.expire()
	if d := w.setDeadlines(); len(d) != 2 {
		t.Fatalf("overtaken firing: deadlines %v", d)
	}

	// After finish (its own short deadline) the timer sets nothing, even
	// with a write in progress past the deadline.
	s.finish()
	s.mu.Lock()
	s.writing, s.deadline = true, time.Now().Add(-time.Second)
	s.mu.Unlock()
	s.expire()
	if d := w.setDeadlines(); len(d) != 3 {
		t.Fatalf("after finish: deadlines %v", d)
	}
	if w.writes != 5 {
		t.Fatalf("writes %d", w.writes)
	}
}
