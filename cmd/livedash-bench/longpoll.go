package main

import (
	"bufio"
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
	base := "http://" + b.target.Host
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
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: b.sourceIP(i)}, Timeout: 5 * time.Second}
		c, err := d.DialContext(ctx, "tcp", b.target.Host)
		if err != nil {
			return fmt.Errorf("dial %d: %w", i, err)
		}
		conns[i], readers[i] = c, bufio.NewReader(c)
	}
	var p99s []time.Duration
	for round := 0; round <= b.o.rounds; round++ {
		req := []byte("GET /api/v1/frames?topics=" + topic + "&wait=60s HTTP/1.1\r\nHost: livedash\r\n\r\n")
		for i, c := range conns {
			if _, err := c.Write(req); err != nil {
				return fmt.Errorf("poll %d: %w", i, err)
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for parkedPolls(base) < n {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("only %d of %d polls parked", parkedPolls(base), n)
			}
			sleep(ctx, 20*time.Millisecond)
		}
		lat := make([]time.Duration, n)
		var start time.Time
		var gate sync.RWMutex
		gate.Lock()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range conns {
			wg.Go(func() {
				_ = conns[i].SetReadDeadline(time.Now().Add(90 * time.Second))
				resp, err := http.ReadResponse(readers[i], nil)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				gate.RLock()
				lat[i] = time.Since(start)
				gate.RUnlock()
			})
		}
		sleep(ctx, 200*time.Millisecond) // readers blocked in Read
		push, _ := http.NewRequestWithContext(ctx, "POST", base+"/api/v1/push/"+topic, strings.NewReader(fmt.Sprintf(`{"x":%d}`, round)))
		push.Header.Set("Authorization", "Bearer "+b.o.token)
		push.Header.Set("Content-Type", "application/json")
		start = time.Now()
		gate.Unlock()
		resp, err := http.DefaultClient.Do(push)
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

// parkedPolls reads livedash_api_long_polls from /metrics (-1 if missing).
func parkedPolls(base string) int {
	resp, err := http.Get(base + "/metrics")
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
