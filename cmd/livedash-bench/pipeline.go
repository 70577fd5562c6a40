package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// pipeline sends -clients pairs of `GET /api/v1/frames?topics=zz&wait=1ns`
// and `GET /healthz` pipelined on ONE keep-alive connection, 50 pairs per
// write, and reports the server's CPU (from /proc/<pid>) per 1,000 pairs for
// the first and the last thousand, and the p99 of /healthz on a second
// connection before (idle) and during the pipelined load. A server whose
// per-request cost grows with the connection's age shows it as a last/first
// ratio well above 1.
func (b *bench) pipeline(ctx context.Context, w io.Writer) error {
	o := b.o
	if o.pid <= 0 {
		return fmt.Errorf("pipeline: -pid is needed for the server's CPU")
	}
	const batch, per = 50, 1000
	pairs := (o.clients + per - 1) / per * per
	addr := b.target.Host
	idle, err := b.healthzLatencies(ctx, 500, nil)
	if err != nil {
		return err
	}
	conn, err := b.dial(ctx, 0)
	if err != nil {
		return err
	}
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 64<<10)
	var reqs []byte
	for range batch {
		reqs = append(reqs, "GET /api/v1/frames?topics=zz&wait=1ns HTTP/1.1\r\nHost: "+addr+"\r\n"+b.authLine()+"\r\nGET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n"+b.authLine()+"\r\n"...)
	}
	stop := make(chan struct{})
	type result struct {
		lat []time.Duration
		err error
	}
	loadedc := make(chan result, 1)
	go func() {
		lat, err := b.healthzLatencies(ctx, 0, stop)
		loadedc <- result{lat, err}
	}()
	req := &http.Request{Method: http.MethodGet}
	var cpu []time.Duration
	start := time.Now()
	mark, err := readProc(o.pid)
	if err != nil {
		close(stop)
		return err
	}
	for sent := 0; sent < pairs; sent += batch {
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := conn.Write(reqs); err != nil {
			close(stop)
			return err
		}
		for i := 0; i < 2*batch; i++ {
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				close(stop)
				return fmt.Errorf("pair %d: %w", sent+i/2, err)
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				close(stop)
				return fmt.Errorf("pair %d: %s %v", sent+i/2, resp.Status, err)
			}
		}
		if (sent+batch)%per == 0 {
			now, err := readProc(o.pid)
			if err != nil {
				close(stop)
				return err
			}
			cpu = append(cpu, now.cpu-mark.cpu)
			mark = now
		}
	}
	elapsed := time.Since(start)
	close(stop)
	loaded := <-loadedc
	if loaded.err != nil {
		return loaded.err
	}
	first, last := cpu[0], cpu[len(cpu)-1]
	fmt.Fprintf(w, "pipeline: %d pairs on one connection in %v; server cpu per %d pairs: first %v last %v (ratio %.2f); all %v\n",
		pairs, fmtDur(elapsed), per, fmtDur(first), fmtDur(last), float64(last)/float64(max(first, time.Millisecond)), cpu)
	pi, pl := p99(idle), p99(loaded.lat)
	fmt.Fprintf(w, "pipeline: /healthz p99 on a second connection: idle %v (%d) loaded %v (%d) ratio %.2f\n",
		fmtDur(pi), len(idle), fmtDur(pl), len(loaded.lat), float64(pl)/float64(max(pi, time.Microsecond)))
	return nil
}

// healthzLatencies times /healthz requests on one keep-alive connection of
// its own, n of them, or until stop is closed when n is 0.
func (b *bench) healthzLatencies(ctx context.Context, n int, stop <-chan struct{}) ([]time.Duration, error) {
	conn, err := b.dial(ctx, 1)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	req := &http.Request{Method: http.MethodGet}
	var out []time.Duration
	for i := 0; n == 0 || i < n; i++ {
		select {
		case <-stop:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		default:
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		t0 := time.Now()
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: "+b.target.Host+"\r\n"+b.authLine()+"\r\n"); err != nil {
			return out, err
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return out, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, time.Since(t0))
		time.Sleep(2 * time.Millisecond) // a script polling, not a second load
	}
	return out, nil
}

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*99/100]
}
