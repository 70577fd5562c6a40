package sse

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	sse "github.com/tmaxmax/go-sse"

	"livedash/config"
	"livedash/dashboard/hub"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

// testConfig is the tests' stream configuration. Its write timeout is long
// enough that a stall of a loaded machine between a write's deadline and
// the write never cuts a healthy stream; the tests of the deadline set
// their own.
func testConfig() config.Stream {
	return config.Stream{
		QueueSize:       1024,
		WriteTimeout:    config.Duration(10 * time.Second),
		Heartbeat:       config.Duration(15 * time.Second),
		Retry:           config.Duration(2 * time.Second),
		MaxStreams:      0,
		MaxStreamsPerIP: 0,
		ReplayMaxFrames: 10000,
		ReplayMaxBytes:  8 << 20,
		DrainWindow:     config.Duration(200 * time.Millisecond),
	}
}

// env is a real store in t.TempDir, a hub on it, and an Echo server on
// 127.0.0.1:0 serving the stream route.
type env struct {
	store *bolt.Store
	hub   *Transport
	reg   *prometheus.Registry
	srv   *httptest.Server
	url   string // stream URL
}

type envOpt func(*bolt.Options)

func newEnv(tb testing.TB, cfg config.Stream, opts ...envOpt) *env {
	tb.Helper()
	ro := bolt.Options{Path: filepath.Join(tb.TempDir(), "store.db"), NoSync: true, MaxFrames: 100000}
	for _, o := range opts {
		o(&ro)
	}
	st, err := bolt.Open(ro)
	if err != nil {
		tb.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h := New(hub.New(st, cfg, hub.Options{Registerer: reg}), Options{})
	st.OnCommit(h.Publish)
	e := echo.New()
	e.HideBanner = true
	e.GET("/api/v1/stream", h.ServeStream)
	srv := httptest.NewUnstartedServer(e)
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Start()
	en := &env{store: st, hub: h, reg: reg, srv: srv, url: srv.URL + "/api/v1/stream"}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			tb.Errorf("hub shutdown: %v", err)
		}
		srv.Close()
		path := st.Path()
		if err := st.Close(); err != nil {
			tb.Error(err)
		}
		checkBolt(tb, path)
	})
	return en
}

// checkBolt runs bbolt's consistency check on the closed store file.
func checkBolt(tb testing.TB, path string) {
	tb.Helper()
	for _, err := range bolt.CheckFile(path) {
		tb.Error(err)
	}
}

// appendN appends n frames of topic with a payload of about size bytes.
func (e *env) appendN(tb testing.TB, topic string, n, size int) []store.Frame {
	tb.Helper()
	bs := make([]store.Batch, n)
	pad := strings.Repeat("x", size)
	for i := range bs {
		bs[i] = store.Batch{Topic: topic, Time: time.Now(), Samples: []store.Sample{{Name: "v", Labels: map[string]string{"p": pad}, Value: float64(i)}}}
	}
	fs, err := e.store.Append(bs)
	if err != nil {
		tb.Fatal(err)
	}
	return fs
}

// metric reads a counter or gauge of the hub's metrics by short name (the
// part after livedash_stream_), with label values in the order of the
// metric's labels, from the env's registry.
func (e *env) metric(tb testing.TB, name string, labels ...string) float64 {
	tb.Helper()
	return metricValue(tb, e.reg, name, labels...)
}

func metricValue(tb testing.TB, reg prometheus.Gatherer, name string, labels ...string) float64 {
	tb.Helper()
	full := "livedash_stream_" + name
	if name == "resets" || name == "rejected" || name == "disconnects" || name == "replays" {
		full += "_total"
	}
	switch name {
	case "frames_sent", "bytes_sent", "replayed_frames", "published_frames", "panics":
		full += "_total"
	case "replayed":
		full = "livedash_stream_replayed_frames_total"
	}
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != full {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for i, l := range m.GetLabel() {
				if l.GetValue() != labels[i] {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
		return 0
	}
	tb.Fatalf("metric %s not registered", full)
	return 0
}

// client is a test SSE client reading one response with go-sse's parser.
type client struct {
	resp   *http.Response
	cancel context.CancelFunc
	events chan sse.Event
	done   chan struct{}
	err    error
}

// dial opens a stream. lastID goes into the Last-Event-ID header when not
// empty; query is appended to the URL as is.
func dial(tb testing.TB, url, query, lastID string) *client {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if query != "" {
		url += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	c := &client{resp: resp, cancel: cancel, events: make(chan sse.Event, 1<<16), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer close(c.events)
		for ev, err := range sse.Read(resp.Body, &sse.ReadConfig{MaxEventSize: 1 << 20}) {
			if err != nil {
				c.err = err
				return
			}
			c.events <- ev
		}
	}()
	tb.Cleanup(c.close)
	return c
}

func (c *client) close() {
	c.cancel()
	_ = c.resp.Body.Close()
	<-c.done
}

// minWait is the least any wait of these tests lasts before it fails: the
// durations they pass are ceilings that catch a hang, and a loaded machine
// running the race detector must not reach them.
const minWait = 15 * time.Second

// next returns the next event or fails after d (at least minWait).
func (c *client) next(tb testing.TB, d time.Duration) sse.Event {
	tb.Helper()
	d = max(d, minWait)
	select {
	case ev, ok := <-c.events:
		if !ok {
			tb.Fatalf("stream ended (err %v)", c.err)
		}
		return ev
	case <-time.After(d):
		tb.Fatalf("no event within %v", d)
	}
	return sse.Event{}
}

// rawLines reads a response body line by line (to see comments and retry:).
func rawLines(r io.Reader) <-chan string {
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

func seqOf(tb testing.TB, id string) uint64 {
	tb.Helper()
	x, err := store.ParseID(id)
	if err != nil {
		tb.Fatalf("bad id %q: %v", id, err)
	}
	return x.Seq
}

// waitFor polls cond until it holds, failing after d (at least minWait).
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	d = max(d, minWait)
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func idStr(epoch, seq uint64) string { return store.ID{Epoch: epoch, Seq: seq}.String() }

type (
	ringBatch  = store.Batch
	ringSample = store.Sample
)

var _ = fmt.Sprintf
var _ = strconv.Itoa
var _ sync.Mutex

// dialTinyBuffer connects to addr with a 4 KiB receive buffer: a client
// that never reads fills it (and the server's send buffer) within a few
// frames, so the server's writes to it block.
func dialTinyBuffer(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}
