package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// longpoll parks b.o.clients long polls (GET /api/v1/frames?topics=<t>&wait=60s)
// on the server of -url, waits until its /metrics says they are all parked,
// pushes one frame to topic <t> (POST /api/v1/push/<t> with -token), and
// reports how long after sending the push each poll was answered. The time
// includes the push's commit (fsync): an upper bound on "after the commit".
// Rounds repeat on the same connections; the first is a warm-up.
func (b *bench) longpoll(ctx context.Context, w io.Writer) error {
	base := b.baseURL()
	const topic = "benchlp"
	n := b.o.clients
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	readers := make([]*bufio.Reader, n)
	for i := range conns {
		c, r, err := b.dialChecked(ctx, i, topic)
		if err != nil {
			return err
		}
		conns[i], readers[i] = c, r
	}
	var p99s []time.Duration
	for round := 0; round <= b.o.rounds; round++ {
		req := []byte("GET /api/v1/frames?topics=" + topic + "&wait=60s HTTP/1.1\r\nHost: " + b.target.Host + "\r\n" + b.authLine() + "\r\n")
		for i, c := range conns {
			if _, err := c.Write(req); err != nil {
				return fmt.Errorf("poll %d: %w", i, err)
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for b.parkedPolls() < n {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("only %d of %d polls parked", b.parkedPolls(), n)
			}
			sleep(ctx, 20*time.Millisecond)
		}
		lat := make([]time.Duration, n)
		want := fmt.Appendf(nil, `"value":%d}`, round)
		var start time.Time
		var gate sync.RWMutex
		gate.Lock()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range conns {
			wg.Go(func() {
				_ = conns[i].SetReadDeadline(time.Now().Add(90 * time.Second))
				body, err := readAnswer(readers[i])
				if err == nil && !bytes.Contains(body, want) {
					err = fmt.Errorf("answer without the pushed frame: %.200q", body)
				}
				if err != nil {
					errs <- err
					return
				}
				gate.RLock()
				lat[i] = time.Since(start)
				gate.RUnlock()
			})
		}
		sleep(ctx, 200*time.Millisecond) // readers blocked in Read
		push, _ := http.NewRequestWithContext(ctx, "POST", base+"/api/v1/push/"+topic, strings.NewReader(fmt.Sprintf(`{"x":%d}`, round)))
		if b.o.basic != "" {
			push.Header.Set("X-Push-Token", b.o.token) // Authorization carries the login
		} else {
			push.Header.Set("Authorization", "Bearer "+b.o.token)
		}
		push.Header.Set("Content-Type", "application/json")
		start = time.Now()
		gate.Unlock()
		resp, err := b.httpClient(30 * time.Second).Do(push)
		if err != nil {
			return fmt.Errorf("push: %w", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("push: %s (is push.token set to -token?)", resp.Status)
		}
		wg.Wait()
		select {
		case err := <-errs:
			return fmt.Errorf("poll answer: %w", err)
		default:
		}
		slices.Sort(lat)
		label := fmt.Sprintf("round %d", round)
		if round == 0 {
			label = "warm-up"
		} else {
			p99s = append(p99s, lat[n*99/100])
		}
		fmt.Fprintf(w, "longpoll %s: %d polls released by one push: p50 %s  p99 %s  max %s\n",
			label, n, fmtDur(lat[n/2]), fmtDur(lat[n*99/100]), fmtDur(lat[n-1]))
	}
	slices.Sort(p99s)
	fmt.Fprintf(w, "longpoll median p99 over %d rounds: %s\n", len(p99s), fmtDur(p99s[len(p99s)/2]))
	return nil
}

// readAnswer reads one HTTP/1.1 response from r and returns its body, which
// is valid until the next read from r. It is the load client's hot path —
// 5,000 answers arrive at once and the client shares the machine's two cores
// with the server — so a 200 response with a Content-Length is taken
// straight from the buffer: the status line checked, Content-Length found,
// nothing else parsed or allocated. Any other response (chunked, another
// status, headers over the buffer) goes through http.ReadResponse, and a
// status other than 200 is an error.
func readAnswer(r *bufio.Reader) ([]byte, error) {
	var head []byte
	for {
		b, _ := r.Peek(r.Buffered())
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			head = b[:i+4]
			break
		}
		if r.Buffered() == r.Size() {
			return slowAnswer(r)
		}
		if _, err := r.Peek(r.Buffered() + 1); err != nil {
			return nil, err
		}
	}
	n, ok := contentLength(head)
	if !ok || !bytes.HasPrefix(head, []byte("HTTP/1.1 200 ")) || len(head)+n > r.Size() {
		return slowAnswer(r)
	}
	all, err := r.Peek(len(head) + n)
	if err != nil {
		return nil, err
	}
	_, _ = r.Discard(len(all))
	return all[len(head):], nil
}

// contentLength finds the one Content-Length header in a response head;
// false sends the response to net/http's parser: chunked, no length, more
// than one, or anything unusual in the head (a header line that is not a
// plain "Token: value", a bare LF).
func contentLength(head []byte) (int, bool) {
	n, found := 0, false
	lines := bytes.Split(head[:len(head)-4], []byte("\r\n"))
	for _, line := range lines[1:] { // after the status line
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(k) == 0 || !plainToken(k) || bytes.ContainsAny(v, "\r\n") {
			return 0, false
		}
		switch {
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			return 0, false
		case bytes.EqualFold(k, []byte("Content-Length")):
			v = bytes.Trim(v, " \t")
			x, ok := parseDigits(v)
			if !ok || len(v) > 9 || found {
				return 0, false
			}
			n, found = int(x), true
		}
	}
	return n, found && !bytes.ContainsAny(lines[0], "\n")
}

// plainToken reports whether k is letters, digits and '-' only.
func plainToken(k []byte) bool {
	for _, c := range k {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// slowAnswer reads a response with net/http's parser.
func slowAnswer(r *bufio.Reader) ([]byte, error) {
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %s: %.200q", resp.Status, body)
	}
	return body, err
}

// dialChecked opens connection i and makes one short request on it before
// returning, so the server has accepted it. Dialling thousands of
// connections back to back otherwise overflows the listen queue (4096 here):
// the kernel completes handshakes it then drops, and the polls sent on them
// never reach the server. One round trip per dial paces the dialling to the
// server's accept rate.
func (b *bench) dialChecked(ctx context.Context, i int, topic string) (net.Conn, *bufio.Reader, error) {
	var last error
	for range 3 {
		c, err := b.dial(ctx, i)
		if err != nil {
			return nil, nil, fmt.Errorf("dial %d: %w", i, err)
		}
		r := bufio.NewReader(c)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Write([]byte("GET /api/v1/frames?topics=" + topic + " HTTP/1.1\r\nHost: " + b.target.Host + "\r\n" + b.authLine() + "\r\n"))
		if err == nil {
			var resp *http.Response
			if resp, err = http.ReadResponse(r, nil); err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %s", resp.Status)
				}
			}
		}
		if err == nil {
			_ = c.SetDeadline(time.Time{})
			return c, r, nil
		}
		last = err
		_ = c.Close()
	}
	return nil, nil, fmt.Errorf("connection %d: first request: %w", i, last)
}

// parkedPolls reads livedash_api_long_polls from /metrics (-1 if missing).
func (b *bench) parkedPolls() int {
	resp, err := b.httpClient(5 * time.Second).Get(b.baseURL() + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "livedash_api_long_polls "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return int(f)
			}
		}
	}
	return -1
}
