package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Long polls end to end, through the binary's wiring: they park in an
// ordinary handler, answer through the server's middleware, share a
// keep-alive connection with other requests, end when their client leaves,
// and are released at shutdown.

// lpServer starts livedash with push on, plus extra config lines. The
// default collectors commit too: polls on topic lp wake and park again.
func lpServer(t *testing.T, extra string) *testServer {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "lp.yaml")
	if err := os.WriteFile(conf, []byte("push:\n  token: s3cret-0123456789abcdef\n"+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServer(t, "--config", conf)
}

// rawConn is an HTTP/1.1 client on one TCP connection, request by request.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{t: t, conn: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(req string) {
	rc.t.Helper()
	if _, err := rc.conn.Write([]byte(req)); err != nil {
		rc.t.Fatal(err)
	}
}

// read reads one response to a GET within d (at least 15 s: d is a
// ceiling that catches a hang, and the machine may be loaded).
func (rc *rawConn) read(d time.Duration) (*http.Response, []byte) {
	rc.t.Helper()
	_ = rc.conn.SetReadDeadline(time.Now().Add(max(d, 15*time.Second)))
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: http.MethodGet})
	if err != nil {
		rc.t.Fatalf("reading a response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		rc.t.Fatalf("reading a body: %v", err)
	}
	return resp, body
}

func get(target string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n"
}

func pushValue(t *testing.T, base string, v int) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/api/v1/push/lp", strings.NewReader(fmt.Sprintf(`{"x":%d}`, v)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer s3cret-0123456789abcdef")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("push: %s", resp.Status)
	}
}

// metric returns the value of the first /metrics line starting with prefix
// (-1 when there is none).
func metric(t testing.TB, base, prefix string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			return v
		}
	}
	return -1
}

const framesOK = `livedash_http_requests_total{code="200",method="GET",route="/api/v1/frames"}`

func waitParked(t *testing.T, base string, n float64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%v parked long polls", n), 15*time.Second, func() bool {
		return metric(t, base, "livedash_api_long_polls ") == n
	})
}

type framesBody struct {
	Frames []struct {
		ID      string
		Samples []struct{ Value float64 }
	}
	Next, Head string
	Reset      any
}

func decodeFrames(t *testing.T, b []byte) framesBody {
	t.Helper()
	var f framesBody
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return f
}

// Long polls on one keep-alive connection, one after another: each parks,
// is released by a push with its frame, and is counted in the request
// metric; a request pipelined behind a parked poll is answered after it;
// and a wait that ends unanswered returns no frames.
func TestLongPollKeepAlive(t *testing.T) {
	ts := lpServer(t, "")
	pushValue(t, ts.URL, 0)
	ref := dialRaw(t, ts.Addr)
	ref.send(get("/api/v1/frames?topics=lp&after=oldest"))
	resp, body := ref.read(5 * time.Second)
	first := decodeFrames(t, body)
	if resp.StatusCode != 200 || len(first.Frames) != 1 {
		t.Fatalf("short poll: %s %s", resp.Status, body)
	}

	before := metric(t, ts.URL, framesOK)
	rc := dialRaw(t, ts.Addr)
	cursor := first.Next
	for i := 1; i <= 3; i++ {
		rc.send(get("/api/v1/frames?topics=lp&wait=20s&after=" + cursor))
		waitParked(t, ts.URL, 1)
		pushValue(t, ts.URL, i)
		resp, body := rc.read(5 * time.Second)
		f := decodeFrames(t, body)
		if resp.StatusCode != 200 || len(f.Frames) != 1 || f.Frames[0].Samples[0].Value != float64(i) || f.Reset != nil {
			t.Fatalf("poll %d: %s %s", i, resp.Status, body)
		}
		if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("poll %d headers %v", i, resp.Header)
		}
		if f.Next != f.Frames[0].ID {
			t.Fatalf("poll %d: next %s after frame %s", i, f.Next, f.Frames[0].ID)
		}
		cursor = f.Next
	}
	// A wait that ends unanswered: no frames, and the cursor where it was
	// or past frames of other topics (the collectors commit meanwhile).
	start := time.Now()
	rc.send(get("/api/v1/frames?topics=lp&wait=300ms&after=" + cursor))
	resp, body = rc.read(5 * time.Second)
	if f := decodeFrames(t, body); resp.StatusCode != 200 || len(f.Frames) != 0 || seqOf(f.Next) < seqOf(cursor) {
		t.Fatalf("timed-out poll after %s: %s %s", cursor, resp.Status, body)
	}
	// Not before the wait; the ceiling only catches a poll that never ends.
	if d := time.Since(start); d < 300*time.Millisecond || d > 15*time.Second {
		t.Fatalf("a 300ms wait answered after %s", d)
	}
	if got := metric(t, ts.URL, framesOK) - before; got != 4 {
		t.Fatalf("frames requests counted: %v, want 4", got)
	}

	// Pipelined: a parked poll and a request behind it are answered in order.
	rc.send(get("/api/v1/frames?topics=lp&wait=20s&after="+cursor) + get("/healthz"))
	waitParked(t, ts.URL, 1)
	pushValue(t, ts.URL, 9)
	if resp, body := rc.read(5 * time.Second); resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"value":9`)) {
		t.Fatalf("pipelined poll: %s %s", resp.Status, body)
	}
	if resp, body := rc.read(5 * time.Second); resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"ok"`)) {
		t.Fatalf("pipelined healthz: %s %s", resp.Status, body)
	}
}

// A client that goes away while its poll waits ends the handler at once
// (the request's context is done), over HTTP/1.1 as over a connection
// closed with requests pipelined behind the poll.
func TestLongPollClientGone(t *testing.T) {
	ts := lpServer(t, "")
	for _, extra := range []string{"", get("/healthz")} {
		rc := dialRaw(t, ts.Addr)
		rc.send(get("/api/v1/frames?topics=lp&wait=30s") + extra)
		waitParked(t, ts.URL, 1)
		_ = rc.conn.Close()
		waitParked(t, ts.URL, 0)
	}
}

// Shutdown answers the parked polls at once, with no frames and
// Connection: close, closes idle connections, and exits within the drain
// window.
func TestLongPollShutdown(t *testing.T) {
	ts := lpServer(t, "stream:\n  drain_window: 1s\n")
	var parked, idle []*rawConn
	for range 20 {
		rc := dialRaw(t, ts.Addr)
		rc.send(get("/api/v1/frames?topics=lp&wait=60s"))
		parked = append(parked, rc)
		rc2 := dialRaw(t, ts.Addr)
		rc2.send(get("/healthz"))
		rc2.read(5 * time.Second)
		idle = append(idle, rc2)
	}
	waitParked(t, ts.URL, 20)
	start := time.Now()
	if err := ts.Stop(); err != nil {
		t.Fatal(err)
	}
	// Parked polls are answered at once, not at the end of their 60 s
	// wait: the ceiling tells the two apart (undelayed: about 1 s).
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("shutdown took %s with a 1s drain window", d)
	}
	for i, rc := range parked {
		resp, body := rc.read(2 * time.Second)
		if resp.StatusCode != 200 || !resp.Close || len(decodeFrames(t, body).Frames) != 0 {
			t.Fatalf("parked poll %d at shutdown: %s close=%v %s", i, resp.Status, resp.Close, body)
		}
	}
	for i, rc := range idle {
		_ = rc.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := rc.br.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("idle connection %d at shutdown: read %d bytes, %v", i, n, err)
		}
	}
}
