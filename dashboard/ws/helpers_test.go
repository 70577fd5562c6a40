package ws

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"livedash/config"
	"livedash/dashboard/apierr"
	"livedash/dashboard/hub"
	"livedash/dashboard/sse"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
	"livedash/dashboard/store/storetest"
)

func testConfig() config.Stream {
	return config.Stream{
		QueueSize:       1024,
		WriteTimeout:    config.Duration(2 * time.Second),
		Heartbeat:       config.Duration(15 * time.Second),
		Retry:           config.Duration(2 * time.Second),
		ReplayMaxFrames: 10000,
		ReplayMaxBytes:  8 << 20,
		DrainWindow:     config.Duration(200 * time.Millisecond),
	}
}

// env is a real store in t.TempDir, a hub on it with both transports, and
// an Echo server on 127.0.0.1:0 serving /api/v1/ws and /api/v1/stream.
type env struct {
	store  *bolt.Store
	faulty *storetest.Faulty // the hub's store, when envOpts.faulty
	hub    *hub.Hub
	ws     *Transport
	sse    *sse.Transport
	reg    *prometheus.Registry
	srv    *httptest.Server
	url    string // ws://…/api/v1/ws
	sseURL string
}

type envOpts struct {
	store func(*bolt.Options)
	ws    Options
	// faulty: the hub reads a storetest.Faulty wrapper of the store (env.faulty);
	// appends through env.store reach it through the same commit hook.
	faulty bool
}

func newEnv(tb testing.TB, cfg config.Stream, o ...envOpts) *env {
	tb.Helper()
	var eo envOpts
	if len(o) > 0 {
		eo = o[0]
	}
	ro := bolt.Options{Path: filepath.Join(tb.TempDir(), "store.db"), NoSync: true, MaxFrames: 100000}
	if eo.store != nil {
		eo.store(&ro)
	}
	st, err := bolt.Open(ro)
	if err != nil {
		tb.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	var hs store.Store = st
	var f *storetest.Faulty
	if eo.faulty {
		f = storetest.NewFaulty(st)
		hs = f
	}
	h := hub.New(hs, cfg, hub.Options{Registerer: reg})
	hs.OnCommit(h.Publish)
	eo.ws.Registerer = reg
	w := New(h, eo.ws)
	s := sse.New(h, sse.Options{})
	e := echo.New()
	e.HideBanner = true
	// The server renders *apierr.Error like this.
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		var ae *apierr.Error
		if !errors.As(err, &ae) {
			ae = apierr.New(http.StatusInternalServerError, "internal_error", "internal error")
		}
		_ = c.JSON(ae.Status, apierr.BodyOf(ae))
	}
	e.GET("/api/v1/ws", w.Serve)
	e.GET("/api/v1/stream", s.ServeStream)
	srv := httptest.NewUnstartedServer(e)
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Start()
	en := &env{store: st, faulty: f, hub: h, ws: w, sse: s, reg: reg, srv: srv,
		url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/v1/ws", sseURL: srv.URL + "/api/v1/stream"}
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
		for _, err := range bolt.CheckFile(path) {
			tb.Error(err)
		}
	})
	return en
}

// appendN appends n frames of topic with a payload of about size bytes, in
// one commit.
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

// appendTopics appends one small frame per topic, in one commit.
func (e *env) appendTopics(tb testing.TB, topics ...string) []store.Frame {
	tb.Helper()
	bs := make([]store.Batch, len(topics))
	for i, t := range topics {
		bs[i] = store.Batch{Topic: t, Time: time.Now(), Samples: []store.Sample{{Name: "v", Value: 1}}}
	}
	fs, err := e.store.Append(bs)
	if err != nil {
		tb.Fatal(err)
	}
	return fs
}

// metric reads a counter or gauge by its full name, with label values in
// the order of the metric's labels.
func (e *env) metric(tb testing.TB, name string, labels ...string) float64 {
	tb.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
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
	tb.Fatalf("metric %s not registered", name)
	return 0
}

// event is one event of a server message.
type event struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	msg   int             // the index of the message it came in
}

// id is a frame's id, or a reset's or hb's head.
func (ev event) id() string {
	var v struct {
		ID   string `json:"id"`
		Head string `json:"head"`
	}
	_ = json.Unmarshal(ev.Data, &v)
	if ev.Event == "frame" {
		return v.ID
	}
	return v.Head
}

// client is a test WebSocket client: a reader goroutine splits every
// message into its events.
type client struct {
	c          *websocket.Conn
	resp       *http.Response
	events     chan event
	done       chan struct{}
	err        error // why reading ended (a websocket.CloseError when the server closed)
	msgs       int
	heartbeats bool // next returns heartbeats too
}

type dialOpts struct {
	header   http.Header
	localIP  string
	compress bool
}

// dial opens a socket; query is appended to the URL as is.
func dial(tb testing.TB, url, query string, o ...dialOpts) *client {
	tb.Helper()
	c, err := tryDial(url, query, o...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.close)
	return c
}

func tryDial(url, query string, o ...dialOpts) (*client, error) {
	var do dialOpts
	if len(o) > 0 {
		do = o[0]
	}
	if query != "" {
		url += "?" + query
	}
	opts := &websocket.DialOptions{HTTPHeader: do.header}
	if do.localIP != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(do.localIP)}}
		opts.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	if do.compress {
		opts.CompressionMode = websocket.CompressionNoContextTakeover
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wc, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	wc.SetReadLimit(-1)
	c := &client{c: wc, resp: resp, events: make(chan event, 1<<16), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer close(c.events)
		for {
			typ, b, err := wc.Read(context.Background())
			if err != nil {
				c.err = err
				return
			}
			if typ != websocket.MessageText {
				c.err = errors.New("binary message from the server")
				return
			}
			for line := range bytes.SplitSeq(b, []byte("\n")) {
				var ev event
				if err := json.Unmarshal(line, &ev); err != nil {
					c.err = err
					return
				}
				ev.msg = c.msgs
				c.events <- ev
			}
			c.msgs++
		}
	}()
	return c, nil
}

func (c *client) close() {
	_ = c.c.CloseNow()
	<-c.done
}

// next returns the next event other than a heartbeat, or fails after d.
func (c *client) next(tb testing.TB, d time.Duration) event {
	tb.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				tb.Fatalf("connection ended (err %v)", c.err)
			}
			if ev.Event == "hb" && !c.heartbeats {
				continue
			}
			return ev
		case <-timer.C:
			tb.Fatalf("no event within %v", d)
		}
	}
}

// send writes a text message.
func (c *client) send(tb testing.TB, msg string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		tb.Fatal(err)
	}
}

// closedWith waits for the server's close and returns its code and reason;
// events before it are skipped.
func (c *client) closedWith(tb testing.TB, d time.Duration) (websocket.StatusCode, string) {
	tb.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-c.events:
			if ok {
				continue
			}
			var ce websocket.CloseError
			if !errors.As(c.err, &ce) {
				tb.Fatalf("connection ended without a close frame: %v", c.err)
			}
			return ce.Code, ce.Reason
		case <-timer.C:
			tb.Fatalf("not closed within %v", d)
		}
	}
}

func seqOf(tb testing.TB, id string) uint64 {
	tb.Helper()
	x, err := store.ParseID(id)
	if err != nil {
		tb.Fatalf("bad id %q: %v", id, err)
	}
	return x.Seq
}

func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func idStr(epoch, seq uint64) string { return store.ID{Epoch: epoch, Seq: seq}.String() }

var _ sync.Mutex
