package dashboard_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"livedash/config"
	"livedash/dashboard"
)

// processCPU is the CPU time, user and system, this process has used so
// far: the server's and the test's clients' together.
func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// latencies samples GET /healthz on a connection of its own, every 2 ms,
// until stop is closed or n samples are taken (n ≤ 0: no limit).
func latencies(t *testing.T, url string, n int, stop <-chan struct{}) []time.Duration {
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	var out []time.Duration
	for n <= 0 || len(out) < n {
		select {
		case <-stop:
			return out
		default:
		}
		start := time.Now()
		resp, err := client.Get(url + "/healthz")
		if err != nil {
			t.Errorf("healthz: %v", err)
			return out
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, time.Since(start))
		time.Sleep(2 * time.Millisecond)
	}
	return out
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*99)/100]
}

// One keep-alive connection pipelines 10,000 pairs of a long poll that
// times out at once and a health check. Every answer is correct and in
// order, the work per request stays flat (the CPU of the last thousand
// pairs is within 3× the first's), and another client's health checks are
// answered meanwhile. The figures are logged; only generous bounds are
// asserted, the machine being shared.
func TestPipelinedLongPollsStayFlat(t *testing.T) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		wireAll(t, c, d)
		c.HTTP.APIRate = 0 // 10,000 polls from one client, on purpose
	})
	idle := latencies(t, h.url, 200, nil)

	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	const (
		pairs = 10_000
		batch = 50
		per   = 1_000 // pairs per CPU measurement
	)
	var reqs []byte
	for range batch {
		reqs = append(reqs, "GET /api/v1/frames?topics=zz&wait=1ns HTTP/1.1\r\nHost: localhost\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"...)
	}
	frames := &http.Request{Method: http.MethodGet}
	readOne := func(i int, what string, ok func(body []byte) bool) {
		resp, err := http.ReadResponse(br, frames)
		if err != nil {
			t.Fatalf("pair %d, %s: %v", i, what, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !ok(body) {
			t.Fatalf("pair %d, %s: %s %q %v", i, what, resp.Status, body, err)
		}
	}
	isEmptyPoll := func(b []byte) bool { // zz is no topic: the answer says so
		return bytes.HasPrefix(b, []byte(`{"frames":[],"next":"`)) && bytes.HasSuffix(b, []byte(`"reset":null,"unknown_topics":["zz"]}`+"\n"))
	}
	isHealthy := func(b []byte) bool { return bytes.Equal(bytes.TrimSpace(b), []byte(`{"status":"ok"}`)) }

	stop := make(chan struct{})
	loadedc := make(chan []time.Duration, 1)
	go func() { loadedc <- latencies(t, h.url, 0, stop) }()
	var cpu []time.Duration // per thousand pairs
	start := time.Now()
	mark := processCPU(t)
	for sent := 0; sent < pairs; sent += batch {
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := conn.Write(reqs); err != nil {
			t.Fatal(err)
		}
		for i := sent; i < sent+batch; i++ {
			readOne(i, "long poll", isEmptyPoll)
			readOne(i, "healthz", isHealthy)
		}
		if (sent+batch)%per == 0 {
			now := processCPU(t)
			cpu = append(cpu, now-mark)
			mark = now
		}
	}
	elapsed := time.Since(start)
	close(stop)
	loaded := recvWithin(t, loadedc, 30*time.Second, "the other client's health checks to stop")

	first, last := cpu[0], cpu[len(cpu)-1]
	t.Logf("%d pipelined pairs in %v; process CPU per %d pairs: first %v, last %v (%.2f×); all: %v",
		pairs, elapsed.Round(time.Millisecond), per, first, last, float64(last)/float64(first), cpu)
	t.Logf("/healthz p99 on another connection: idle %v (%d samples), under the pipelined load %v (%d samples)",
		p99(idle), len(idle), p99(loaded), len(loaded))
	if last > 3*first {
		t.Errorf("CPU per %d pairs grew from %v to %v", per, first, last)
	}
	// Answered meanwhile: some samples, none starved for long (a ceiling,
	// not a latency goal: the figure is logged above).
	if p := p99(loaded); p > 10*time.Second || len(loaded) == 0 {
		t.Errorf("/healthz p99 under load %v (%d samples)", p, len(loaded))
	}
}
