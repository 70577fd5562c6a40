package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"livedash/config"
	"livedash/dashboard"
	"livedash/dashboard/api"
	"livedash/dashboard/push"
	"livedash/dashboard/route"
	"livedash/dashboard/store"
)

var sseLine = regexp.MustCompile(`^(id|event|data|retry): `)

// storeAppender stores pushed frames, as cmd/livedash's adapter does.
type storeAppender struct{ st store.Store }

func (a storeAppender) AppendPush(topic string, t time.Time, samples []push.Sample) (string, error) {
	rs := make([]store.Sample, len(samples))
	for i, s := range samples {
		rs[i] = store.Sample(s)
	}
	fs, err := a.st.Append([]store.Batch{{Topic: topic, Time: t, Samples: rs}})
	if err != nil {
		return "", err
	}
	return fs[0].ID.String(), nil
}

const pushToken = "s3cret"

// wireAll gives the server every part, wired as cmd/livedash wires them: the
// hub, the API (released at shutdown) and push with a token.
func wireAll(tb testing.TB, c *config.Config, d *dashboard.Deps) {
	tb.Helper()
	addHub(c, d)
	a := api.New(d.Store, c.API, api.Options{Registerer: d.Registry, MaxParkedPerClient: c.HTTP.MaxPollsPerClient})
	d.Store.OnCommit(a.OnCommit)
	if err := a.Load(); err != nil {
		tb.Fatal(err)
	}
	d.API = append(d.API, a.Routes()...)
	d.OnShutdown = append(d.OnShutdown, a.Close)
	c.Push.Token = pushToken
	d.Push = push.Handler(storeAppender{d.Store}, c.Push, d.Registry)
}

// clientFor returns a client that speaks only proto: "HTTP/1.1", or "h2c"
// (HTTP/2 over cleartext TCP with prior knowledge).
func clientFor(proto string) *http.Client {
	var p http.Protocols
	switch proto {
	case "HTTP/1.1":
		p.SetHTTP1(true)
	case "h2c":
		p.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// appendFrame appends one frame of topic to the harness's store.
func appendFrame(t *testing.T, h *harness, topic string, v float64) store.ID {
	t.Helper()
	fs, err := h.store.Append([]store.Batch{{Topic: topic, Samples: []store.Sample{{Name: "x", Value: v}}}})
	if err != nil {
		t.Fatal(err)
	}
	return fs[0].ID
}

// waitMetric waits until the /metrics line starting with prefix has value v.
func waitMetric(t *testing.T, h *harness, prefix string, v float64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for metricValue(t, h, prefix) != v {
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v after 15s, want %v", prefix, metricValue(t, h, prefix), v)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A middleware added through Deps.Middleware wraps every route — the page,
// health, /metrics, the API, a long poll released by a commit, the SSE
// stream, push, and the 404 and 405 answers — over HTTP/1.1 and over h2c;
// and when it rejects with 401, every one of them, stream and long poll
// included, gets its 401.
func TestMiddlewareChainCoversEveryRoute(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "h2c"} {
		for _, reject := range []bool{false, true} {
			name := proto + map[bool]string{false: "/pass", true: "/reject"}[reject]
			t.Run(name, func(t *testing.T) { chainCoversEveryRoute(t, proto, reject) })
		}
	}
}

func chainCoversEveryRoute(t *testing.T, proto string, reject bool) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		wireAll(t, c, d)
		d.UnencryptedHTTP2 = proto == "h2c"
		d.Middleware = append(d.Middleware, func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				c.Response().Header().Set("X-Test-Chain", "1")
				if reject {
					return echo.NewHTTPError(http.StatusUnauthorized, "rejected by the test middleware")
				}
				return next(c)
			}
		})
	})
	client := clientFor(proto)
	defer client.CloseIdleConnections()
	wantProto := map[string]int{"HTTP/1.1": 1, "h2c": 2}[proto]

	// check sends one request and checks the chain's mark, the protocol and
	// the status; body may be nil. It returns the open response: the caller
	// reads and closes the body.
	check := func(method, path string, status int, hdr http.Header, body io.Reader) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, h.url+path, body)
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if resp.ProtoMajor != wantProto {
			t.Errorf("%s %s: answered over %s", method, path, resp.Proto)
		}
		if resp.Header.Get("X-Test-Chain") != "1" {
			t.Errorf("%s %s: no X-Test-Chain header: %v", method, path, resp.Header)
		}
		if reject {
			status = http.StatusUnauthorized
		}
		if resp.StatusCode != status {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			t.Errorf("%s %s: %s %q, want %d", method, path, resp.Status, b, status)
		}
		return resp
	}
	read := func(resp *http.Response) string {
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("body: %v", err)
		}
		return string(b)
	}

	appendFrame(t, h, "seed", 1)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/", 200},
		{"GET", "/healthz", 200},
		{"GET", "/readyz", 200},
		{"GET", "/metrics", 200},
		{"GET", "/api/v1/status", 200},
		{"GET", "/api/v1/latest", 200},
		{"GET", "/api/v1/series", 200},
		{"GET", "/api/v1/query", 200},
		{"GET", "/api/v1/openapi.json", 200},
		{"GET", "/api/v1/frames?after=oldest", 200},
		{"GET", "/api/v1/nope", 404},
		{"GET", "/missing.js", 404},
		{"DELETE", "/healthz", 405},
	} {
		body := read(check(tc.method, tc.path, tc.status, nil, nil))
		if reject && !strings.Contains(body, `"code":"unauthorized"`) {
			t.Errorf("%s %s: 401 body %q", tc.method, tc.path, body)
		}
	}

	// Push, with the token push itself checks.
	resp := check("POST", "/api/v1/push/x", 200, http.Header{
		"Content-Type": {"application/json"}, "Authorization": {"Bearer " + pushToken},
	}, strings.NewReader(`{"queue_depth":3}`))
	read(resp)

	// A long poll that parks, released by a commit.
	const parked = "livedash_api_long_polls "
	type result struct {
		resp *http.Response
		body string
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", h.url+"/api/v1/frames?topics=lp&wait=20s", nil)
		resp, err := client.Do(req)
		if err != nil {
			done <- result{}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp, string(b)}
	}()
	if !reject {
		waitMetric(t, h, parked, 1)
		appendFrame(t, h, "lp", 42)
	}
	select {
	case r := <-done:
		if r.resp == nil {
			t.Fatal("long poll failed")
		}
		switch {
		case r.resp.Header.Get("X-Test-Chain") != "1" || r.resp.ProtoMajor != wantProto:
			t.Errorf("long poll: %s %v", r.resp.Proto, r.resp.Header)
		case reject && r.resp.StatusCode != 401:
			t.Errorf("long poll: %s, want 401", r.resp.Status)
		case !reject && (r.resp.StatusCode != 200 || !strings.Contains(r.body, `"value":42`)):
			t.Errorf("long poll: %s %s", r.resp.Status, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll was not answered")
	}

	// The stream: its response head, then (when it is served) its first event.
	resp = check("GET", "/api/v1/stream", 200, nil, nil)
	if reject {
		read(resp)
	} else {
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("stream Content-Type %q", ct)
		}
		if l, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !sseLine.MatchString(l) {
			t.Errorf("stream's first line %q %v", l, err)
		}
		resp.Body.Close()
	}

	// The WebSocket handshake (HTTP/1.1 whatever the client speaks
	// otherwise): its 101, or its 401, carries the chain's mark.
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	wc, wresp, err := websocket.Dial(wctx, "ws"+strings.TrimPrefix(h.url, "http")+"/api/v1/ws", nil)
	switch {
	case wresp == nil:
		t.Errorf("ws: no response: %v", err)
	case wresp.Header.Get("X-Test-Chain") != "1":
		t.Errorf("ws: no X-Test-Chain header: %v", wresp.Header)
	case reject && (err == nil || wresp.StatusCode != http.StatusUnauthorized):
		t.Errorf("ws: %d %v, want 401", wresp.StatusCode, err)
	case !reject && err != nil:
		t.Errorf("ws: %v", err)
	case !reject:
		if _, msg, err := wc.Read(wctx); err != nil || !strings.HasPrefix(string(msg), `{"event":"hello"`) {
			t.Errorf("ws: first message %q %v", msg, err)
		}
		_ = wc.CloseNow()
	}

	// Every answer above was counted by route template, the 401s too. A
	// request is counted when its handler returns: over HTTP/2 the
	// stream's handler returns once it sees the client close, which can be
	// after this point, so the count is awaited.
	code := map[bool]string{false: "200", true: "401"}[reject]
	for _, route := range []string{"/", "/api/v1/frames", "/api/v1/stream", "/api/v1/push/:topic", "/healthz"} {
		prefix := fmt.Sprintf(`livedash_http_requests_total{code=%q,method=%q,route=%q} `, code,
			map[bool]string{false: "GET", true: "POST"}[route == "/api/v1/push/:topic"], route)
		deadline := time.Now().Add(15 * time.Second)
		for metricValue(t, h, prefix) < 1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if v := metricValue(t, h, prefix); v < 1 {
			t.Errorf("%s not counted", prefix)
		}
	}
}

// A panic in a long-poll handler while it answers, after it parked: the
// request fails with a 500 and the JSON error body, the panic is counted
// in livedash_http_panics_total under the route template, and the server
// goes on — a concurrent SSE stream keeps receiving frames. A panic after
// the response was committed cuts that response short instead.
func TestPanicInParkedLongPoll(t *testing.T) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		wireAll(t, c, d)
		// Requests with X-Panic panic when their answer is written: a
		// response hook runs inside WriteHeader, here the handler's,
		// once it wakes from its wait.
		d.Middleware = append(d.Middleware, func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				if c.Request().Header.Get("X-Panic") == "1" {
					var once sync.Once
					c.Response().Before(func() {
						once.Do(func() { panic("injected: writing the answer of a long poll") })
					})
				}
				return next(c)
			}
		})
		// A handler that panics after committing its response.
		d.API = append(d.API, route.Route{Method: "GET", Path: "/test/committed-panic", Name: "committed-panic",
			Handler: func(c echo.Context) error {
				c.Response().WriteHeader(http.StatusOK)
				_, _ = c.Response().Write([]byte("partial"))
				c.Response().Flush()
				panic("injected: after the response was committed")
			}})
	})

	// A live stream beside the failing poll.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sreq, _ := http.NewRequestWithContext(ctx, "GET", h.url+"/api/v1/stream?topics=s", nil)
	sresp, err := http.DefaultClient.Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	ids := make(chan string, 16)
	go func() {
		defer close(ids)
		br := bufio.NewReader(sresp.Body)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if id, ok := strings.CutPrefix(l, "id: "); ok {
				ids <- strings.TrimSpace(id)
			}
		}
	}()
	// expectID waits for the stream to send want (the hello event's own
	// ID comes first).
	expectID := func(want store.ID) {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case id := <-ids:
				if id == want.String() {
					return
				}
			case <-timeout:
				t.Fatalf("stream did not send %s", want)
			}
		}
	}
	expectID(appendFrame(t, h, "s", 1))

	// The long poll parks, is woken by a commit, and panics answering.
	done := make(chan *http.Response, 1)
	var body []byte
	go func() {
		req, _ := http.NewRequest("GET", h.url+"/api/v1/frames?topics=lp&wait=20s", nil)
		req.Header.Set("X-Panic", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- nil
			return
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- resp
	}()
	waitMetric(t, h, "livedash_api_long_polls ", 1)
	appendFrame(t, h, "lp", 7)
	var resp *http.Response
	select {
	case resp = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the panicking long poll was not answered")
	}
	if resp == nil {
		t.Fatal("the panicking long poll's connection failed; want a 500")
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != 500 || e.Error.Code != "internal_error" {
		t.Fatalf("panicking long poll: %s %q", resp.Status, body)
	}
	if resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("500 without the security headers: %v", resp.Header)
	}
	waitMetric(t, h, `livedash_http_panics_total{route="/api/v1/frames"} `, 1)
	if v := metricValue(t, h, `livedash_http_requests_total{code="500",method="GET",route="/api/v1/frames"} `); v != 1 {
		t.Errorf("500 counted %v times", v)
	}
	waitMetric(t, h, "livedash_api_long_polls ", 0)

	// The stream is unaffected, and so is the server.
	expectID(appendFrame(t, h, "s", 2))
	if r, _ := get(t, h.url+"/healthz"); r.StatusCode != 200 {
		t.Fatalf("healthz after the panic: %d", r.StatusCode)
	}

	// Committed, then panicked: the response is cut short, not completed.
	cresp, err := http.Get(h.url + "/test/committed-panic")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(cresp.Body)
	cresp.Body.Close()
	if err == nil {
		t.Fatalf("a response whose handler panicked after committing ended cleanly: %s %q", cresp.Status, b)
	}
	waitMetric(t, h, `livedash_http_panics_total{route="/test/committed-panic"} `, 1)
	expectID(appendFrame(t, h, "s", 3))
}
