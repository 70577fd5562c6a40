package sse

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"livedash/config"
	"livedash/dashboard/hub"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

// countingStore counts the ring reads that encode frames (AfterView).
type countingStore struct {
	store.Store
	reads atomic.Int64
}

func (c *countingStore) AfterView(cursor store.ID, match func([]byte) bool, lim store.Limits, fn func(uint64, int64, []byte, []byte)) store.Result {
	c.reads.Add(1)
	return c.Store.AfterView(cursor, match, lim, fn)
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// rawEnv is a real store, a hub reading it through countingStore, and an
// http.Server on 127.0.0.1:0 whose connections count their writes.
type rawEnv struct {
	st     *bolt.Store
	cs     *countingStore
	hub    *Transport
	cl     *countingListener
	reg    *prometheus.Registry
	addr   string
	errLog *syncBuffer // the server's ErrorLog and Echo's logger
}

// newRawEnv serves handler(hub). The hub is shut down, the server closed and
// the store checked at the end of the test.
// A replaySlots channel, if given, is the hub's replay semaphore (the test
// holds slots to make replays wait).
func newRawEnv(t *testing.T, cfg config.Stream, handler func(h *Transport, logs *syncBuffer) http.Handler, replaySlots ...chan struct{}) *rawEnv {
	t.Helper()
	st, err := bolt.Open(bolt.Options{Path: filepath.Join(t.TempDir(), "store.db"), NoSync: true, MaxFrames: 100000})
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: st}
	reg := prometheus.NewRegistry()
	ho := hub.Options{Registerer: reg}
	if len(replaySlots) > 0 {
		ho.ReplaySlots = replaySlots[0]
	}
	h := New(hub.New(cs, cfg, ho), Options{})
	st.OnCommit(h.Publish)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cl := &countingListener{Listener: ln}
	srv := &http.Server{Handler: handler(h, logs), ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(logs, "", 0)}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(cl) })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("hub shutdown: %v", err)
		}
		_ = srv.Close()
		wg.Wait()
		path := st.Path()
		if err := st.Close(); err != nil {
			t.Error(err)
		}
		checkBolt(t, path)
	})
	return &rawEnv{st: st, cs: cs, hub: h, cl: cl, reg: reg, addr: ln.Addr().String(), errLog: logs}
}

func plainHandler(h *Transport, _ *syncBuffer) http.Handler { return h }

// echoHandler is the production shape: Echo, middleware setting headers
// before the handler, CORS, and a Before hook.
func echoHandler(h *Transport, logs *syncBuffer) http.Handler {
	e := echo.New()
	e.HideBanner = true
	e.Logger.SetOutput(logs)
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Header()["X-Content-Type-Options"] = []string{"nosniff"}
			c.Response().Header()["Content-Security-Policy"] = []string{"default-src 'none'; frame-ancestors 'none'"}
			return next(c)
		}
	})
	e.Use(middleware.CORSWithConfig(middleware.CORSConfig{AllowOrigins: []string{"https://ops.example.com"}}))
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Before(func() { c.Response().Header().Set("X-Before-Hook", "ran") })
			return next(c)
		}
	})
	e.GET("/api/v1/stream", h.ServeStream)
	return e
}

// rawConn is a raw TCP client of one stream response.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	head []string // status line and header lines, without CRLF
	body int      // body bytes read by event
}

// rawGet sends "GET target" with extra header lines over a fresh connection
// and reads the response head.
func rawGet(t *testing.T, addr, proto, target string, headers ...string) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET " + target + " " + proto + "\r\nHost: x\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(minWait))
	rc := &rawConn{t: t, conn: conn, br: bufio.NewReader(conn)}
	for {
		line, err := rc.br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading head %q: %v", rc.head, err)
		}
		if !strings.HasSuffix(line, "\r\n") {
			t.Fatalf("head line without CRLF: %q", line)
		}
		if line = strings.TrimSuffix(line, "\r\n"); line == "" {
			return rc
		}
		rc.head = append(rc.head, line)
	}
}

func (rc *rawConn) header(name string) []string {
	var vs []string
	for _, l := range rc.head[1:] {
		if k, v, ok := strings.Cut(l, ": "); ok && strings.EqualFold(k, name) {
			vs = append(vs, v)
		}
	}
	return vs
}

type rawEvent struct {
	id, typ, data, retry string
	comment              bool
	size                 int // bytes on the wire, with the blank line
}

// event reads the next event (or comment / retry: block) of the body.
func (rc *rawConn) event() rawEvent {
	rc.t.Helper()
	var ev rawEvent
	for {
		line, err := rc.br.ReadString('\n')
		if err != nil {
			rc.t.Fatalf("reading event (so far %+v): %v", ev, err)
		}
		ev.size += len(line)
		rc.body += len(line)
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			return ev
		}
		k, v, _ := strings.Cut(line, ": ")
		switch k {
		case "id":
			ev.id = v
		case "event":
			ev.typ = v
		case "data":
			ev.data = v
		case "retry":
			ev.retry = v
		case "":
			ev.comment = true
		}
	}
}

// frames reads n frame events and returns their seqs.
func (rc *rawConn) frames(n int) []uint64 {
	rc.t.Helper()
	seqs := make([]uint64, 0, n)
	for range n {
		ev := rc.event()
		if ev.typ != "frame" {
			rc.t.Fatalf("after seqs %v: got %+v, want a frame", seqs, ev)
		}
		seqs = append(seqs, seqOf(rc.t, ev.id))
	}
	return seqs
}

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestReconnectWrites: a reconnect with a replay costs two writes on the
// socket — the response head, which net/http flushes when the connection is
// taken over, then hello and the replayed frames together — over plain
// net/http and under Echo; a second client resuming alike gets the same bytes
// from the replay cache without a store read; a stream without a cursor and
// a reset cost two writes too, and an over-limit retry: one (net/http writes
// head and body together when the handler returns).
func TestReconnectWrites(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(*Transport, *syncBuffer) http.Handler
	}{{"net/http", plainHandler}, {"echo", echoHandler}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.ReplayMaxFrames = 150
			cfg.MaxStreamsPerIP = 4
			// Writes and bytes are counted exactly: no idle stream's
			// heartbeat may come between, however slowly this runs.
			cfg.Heartbeat = config.Duration(time.Hour)
			e := newRawEnv(t, cfg, tc.handler)
			var fs []store.Frame
			for range 3 {
				batches := make([]store.Batch, 100)
				for i := range batches {
					batches[i] = store.Batch{Topic: "cpu", Time: time.Now(), Samples: []store.Sample{{Name: "v", Value: float64(i)}}}
				}
				got, err := e.st.Append(batches)
				if err != nil {
					t.Fatal(err)
				}
				fs = append(fs, got...)
			}
			head := fs[len(fs)-1].ID.Seq // 300
			cursor := fs[199].ID         // 100 frames behind

			// open connects and checks that the head and the first event
			// arrive; the caller reads the rest.
			open := func(lastID string) *rawConn {
				t.Helper()
				var hdrs []string
				if lastID != "" {
					hdrs = append(hdrs, "Last-Event-ID: "+lastID)
				}
				rc := rawGet(t, e.addr, "HTTP/1.1", "/api/v1/stream", hdrs...)
				if rc.head[0] != "HTTP/1.1 200 OK" || !slices.Equal(rc.header("Content-Type"), []string{"text/event-stream"}) ||
					!slices.Equal(rc.header("Connection"), []string{"close"}) || rc.header("Transfer-Encoding") != nil {
					t.Fatalf("head %q", rc.head)
				}
				return rc
			}
			writesOf := func(what string, before int64, want int64) {
				t.Helper()
				// Everything the test waited for has been read, so every
				// write that carried it has been made; nothing else is due.
				if got := e.cl.writes.Load() - before; got != want {
					t.Fatalf("%s: %d writes, want %d", what, got, want)
				}
			}

			// Resume 100 frames behind: head, hello, 100 frames, one write.
			before, reads := e.cl.writes.Load(), e.cs.reads.Load()
			c1 := open(cursor.String())
			if ev := c1.event(); ev.typ != "hello" || ev.id != "" || !strings.Contains(ev.data, `"head":"`+idStr(e.st.Epoch(), head)+`"`) {
				t.Fatalf("hello %+v", ev)
			}
			if got := c1.frames(100); !slices.Equal(got, seqRange(201, 300)) {
				t.Fatalf("replayed %v", got)
			}
			writesOf("resume", before, 2)
			if n := e.cs.reads.Load() - reads; n != 1 {
				t.Fatalf("%d store reads for the first resume", n)
			}

			// The same cursor again: the same events, from the cache.
			before, reads = e.cl.writes.Load(), e.cs.reads.Load()
			c2 := open(cursor.String())
			if ev := c2.event(); ev.typ != "hello" {
				t.Fatalf("hello %+v", ev)
			}
			if got := c2.frames(100); !slices.Equal(got, seqRange(201, 300)) {
				t.Fatalf("replayed from the cache %v", got)
			}
			writesOf("resume from the cache", before, 2)
			if n := e.cs.reads.Load() - reads; n != 0 {
				t.Fatalf("%d store reads for a resume the cache holds", n)
			}

			// Both continue live with the next frame.
			f := e.appendOne(t)
			for _, c := range []*rawConn{c1, c2} {
				if got := c.frames(1); got[0] != f.ID.Seq {
					t.Fatalf("live %v, want %d", got, f.ID.Seq)
				}
			}
			head = f.ID.Seq

			// No cursor: head and hello (with id: head). Only the hello
			// is counted as stream bytes: what the streams counted is
			// what their clients read of the bodies, no HTTP head.
			before = e.cl.writes.Load()
			c3 := open("")
			ev := c3.event()
			if ev.typ != "hello" || ev.id != idStr(e.st.Epoch(), head) {
				t.Fatalf("hello %+v", ev)
			}
			writesOf("live start", before, 2)
			// A write's bytes are counted right after it returns, which
			// can be after the client read them: wait for the count.
			read := float64(c1.body + c2.body + c3.body)
			waitFor(t, 5*time.Second, "bytes_sent to count the bodies read", func() bool {
				return metricValue(t, e.reg, "bytes_sent") == read
			})

			// Too far behind the cap: head, hello and reset.
			before = e.cl.writes.Load()
			c4 := open(fs[0].ID.String())
			if ev := c4.event(); ev.typ != "hello" {
				t.Fatalf("hello %+v", ev)
			}
			if ev := c4.event(); ev.typ != "reset" || !strings.Contains(ev.data, `"reason":"too_far"`) {
				t.Fatalf("reset %+v", ev)
			}
			writesOf("too_far", before, 2)

			// Over the per-IP limit (4 open): head and retry:, then EOF.
			before = e.cl.writes.Load()
			c5 := open("")
			if ev := c5.event(); ev.retry == "" {
				t.Fatalf("over limit: %+v", ev)
			}
			if ev := c5.event(); !ev.comment {
				t.Fatalf("over limit: %+v", ev)
			}
			if _, err := c5.br.ReadByte(); err == nil {
				t.Fatal("over-limit body did not end")
			}
			writesOf("over limit", before, 1)

			if l := e.errLog.String(); l != "" {
				t.Fatalf("server or Echo logged:\n%s", l)
			}
		})
	}
}

func (e *rawEnv) appendOne(t *testing.T) store.Frame {
	t.Helper()
	fs, err := e.st.Append([]store.Batch{{Topic: "cpu", Time: time.Now(), Samples: []store.Sample{{Name: "v", Value: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	return fs[0]
}

// TestHelloNotHeldByReplayQueue: a replay waiting for a slot sends head and
// hello first, so the first bytes of a stream are never queued; the frames
// follow once a slot frees (read once for two streams resuming alike), and a
// shutdown while a replay waits ends it with retry:.
func TestHelloNotHeldByReplayQueue(t *testing.T) {
	sem := make(chan struct{}, 2)
	e := newRawEnv(t, testConfig(), plainHandler, sem)
	var fs []store.Frame
	for range 20 {
		fs = append(fs, e.appendOne(t))
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	c := rawGet(t, e.addr, "HTTP/1.1", "/api/v1/stream", "Last-Event-ID: "+fs[9].ID.String())
	if ev := c.event(); ev.typ != "hello" {
		t.Fatalf("hello %+v", ev)
	}
	// A second stream with the same cursor waits for the first one's read,
	// also after saying hello.
	c2 := rawGet(t, e.addr, "HTTP/1.1", "/api/v1/stream", "Last-Event-ID: "+fs[9].ID.String())
	if ev := c2.event(); ev.typ != "hello" {
		t.Fatalf("hello %+v", ev)
	}
	<-sem // one slot free
	for _, c := range []*rawConn{c, c2} {
		if got := c.frames(10); !slices.Equal(got, seqRange(fs[10].ID.Seq, fs[19].ID.Seq)) {
			t.Fatalf("replayed %v", got)
		}
	}
	if n := e.cs.reads.Load(); n != 1 {
		t.Fatalf("%d store reads for two identical resumes", n)
	}

	// No slot again; a third stream, from elsewhere, waits, and is shut
	// down while it waits.
	sem <- struct{}{}
	c3 := rawGet(t, e.addr, "HTTP/1.1", "/api/v1/stream", "Last-Event-ID: "+fs[4].ID.String())
	if ev := c3.event(); ev.typ != "hello" {
		t.Fatalf("hello %+v", ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- e.hub.Shutdown(ctx) }()
	var lines []string
	for {
		line, err := c3.br.ReadString('\n')
		if err != nil {
			break
		}
		lines = append(lines, strings.TrimSuffix(line, "\n"))
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "retry: ") || lines[1] != "" {
		t.Fatalf("after hello, while queued: %q; want retry: and the end", lines)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if n := e.cs.reads.Load(); n != 1 {
		t.Fatalf("the shut-down stream read the store (%d reads)", n)
	}
	for range cap(sem) {
		<-sem
	}
}

// TestReplayCacheKey: streams resuming with a different cursor, head or
// topic set never get each other's cached bytes; the same key is served
// from the cache. Each case checks the exact replayed seqs and the live
// seam right after them.
func TestReplayCacheKey(t *testing.T) {
	e := newRawEnv(t, testConfig(), plainHandler)
	topicOf := map[uint64]string{}
	for i := range 40 {
		topic := []string{"cpu", "mem"}[i%2]
		fs, err := e.st.Append([]store.Batch{{Topic: topic, Time: time.Now(), Samples: []store.Sample{{Name: "v", Value: 1}}}})
		if err != nil {
			t.Fatal(err)
		}
		topicOf[fs[0].ID.Seq] = topic
	}
	epoch := e.st.Epoch()
	want := func(from, to uint64, topic string) []uint64 {
		var s []uint64
		for seq := from + 1; seq <= to; seq++ {
			if topic == "" || topicOf[seq] == topic {
				s = append(s, seq)
			}
		}
		return s
	}
	type stream struct {
		c     *rawConn
		topic string
	}
	var open []stream
	check := func(name string, from uint64, topic string, reads int64) {
		t.Helper()
		head := e.st.Head().Seq
		before := e.cs.reads.Load()
		target := "/api/v1/stream"
		if topic != "" {
			target += "?topics=" + topic
		}
		c := rawGet(t, e.addr, "HTTP/1.1", target, "Last-Event-ID: "+idStr(epoch, from))
		if ev := c.event(); ev.typ != "hello" {
			t.Fatalf("%s: hello %+v", name, ev)
		}
		w := want(from, head, topic)
		if got := c.frames(len(w)); !slices.Equal(got, w) {
			t.Fatalf("%s: replayed %v, want %v", name, got, w)
		}
		if got := e.cs.reads.Load() - before; got != reads {
			t.Fatalf("%s: %d store reads, want %d", name, got, reads)
		}
		open = append(open, stream{c, topic})
	}
	// Every open stream continues live right after its replay: no gap, no
	// duplicate.
	seam := func() {
		t.Helper()
		from := e.st.Head().Seq
		for i := range 4 {
			topic := []string{"cpu", "mem"}[i%2]
			fs, err := e.st.Append([]store.Batch{{Topic: topic, Time: time.Now(), Samples: []store.Sample{{Name: "v", Value: 1}}}})
			if err != nil {
				t.Fatal(err)
			}
			topicOf[fs[0].ID.Seq] = topic
		}
		for i, s := range open {
			w := want(from, e.st.Head().Seq, s.topic)
			if got := s.c.frames(len(w)); !slices.Equal(got, w) {
				t.Fatalf("stream %d (topics %q): live %v, want %v", i, s.topic, got, w)
			}
		}
	}
	check("from 5", 5, "", 1)
	check("from 5 again", 5, "", 0) // the cache serves the same key
	check("from 10", 10, "", 1)     // cursor differs
	check("from 5 cpu", 5, "cpu", 1)
	check("from 5 mem", 5, "mem", 1) // topics differ
	check("from 5 cpu again", 5, "cpu", 0)
	seam()
	// The head moved: an entry for the old head would leave a gap.
	check("from 5, new head", 5, "", 1)
	check("from 5, new head, again", 5, "", 0)
	seam()
}

// TestReplayCacheConcurrent: many streams resuming alike at once share one
// store read, and each gets every frame exactly once, then live ones.
func TestReplayCacheConcurrent(t *testing.T) {
	e := newRawEnv(t, testConfig(), plainHandler)
	var fs []store.Frame
	for range 60 {
		fs = append(fs, e.appendOne(t))
	}
	const n = 50
	var wg sync.WaitGroup
	conns := make([]*rawConn, n)
	errs := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			conn, err := net.Dial("tcp", e.addr)
			if err != nil {
				errs <- err.Error()
				return
			}
			fmt.Fprintf(conn, "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nLast-Event-ID: %s\r\n\r\n", fs[9].ID.String())
			conns[i] = &rawConn{conn: conn, br: bufio.NewReader(conn)}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, c := range conns {
		t.Cleanup(func() { c.conn.Close() })
	}
	for _, c := range conns {
		c.t = t
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			line, err := c.br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line == "\r\n" {
				break
			}
		}
		if ev := c.event(); ev.typ != "hello" {
			t.Fatalf("hello %+v", ev)
		}
		if got := c.frames(50); !slices.Equal(got, seqRange(fs[10].ID.Seq, fs[59].ID.Seq)) {
			t.Fatalf("replayed %v", got)
		}
	}
	if r := e.cs.reads.Load(); r != 1 {
		t.Fatalf("%d store reads for %d identical resumes", r, n)
	}
	f := e.appendOne(t)
	for _, c := range conns {
		if got := c.frames(1); got[0] != f.ID.Seq {
			t.Fatalf("live %v", got)
		}
	}
}
