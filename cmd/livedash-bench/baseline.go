package main

// serve-baseline is the load tool's baseline: an SSE hub that does nothing
// but broadcast bytes encoded once per tick. Run beside livedash under the
// same load client (scripts/loadbench.sh does), it shows the machine's limit
// for a hub that only broadcasts bytes, so that livedash, which also stores,
// replays and filters, can be reported as a ratio to that limit.
//
// What the load client relies on: every path answers 200 text/event-stream,
// and each tick publishes -batch events
//
//	id: N\nevent: frame\ndata: {"ts":<the tick's unix ms>,"p":"xx…"}\n\n
//
// of about -size bytes each, with N consecutive from 1 across ticks. A
// stream starts at the next tick; Last-Event-ID is ignored (no replay).
// A stream more than baselineQueue events behind when woken, or whose write
// misses the write deadline, is disconnected: the bounds of livedash's
// default stream.queue_size and stream.write_timeout.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	baselineQueue        = 1024             // events a stream may lag before it is cut
	baselineWriteTimeout = 10 * time.Second // per-write deadline
)

type baselineConfig struct {
	rate  float64 // ticks per second
	batch int     // events per tick
	size  int     // approximate bytes per event, framing included
}

// node is one tick's events, encoded once and never changed. When the next
// tick is published, next is set and then ready is closed: that one close
// wakes every stream waiting on this node.
type node struct {
	data  []byte
	last  uint64 // id of the last event in data
	next  *node
	ready chan struct{}
}

type baselineHub struct {
	tail atomic.Pointer[node] // newest node; stored by the publisher only
	done chan struct{}        // closed at shutdown: every stream ends

	mu      sync.Mutex // guards closed and streams.Add against streams.Wait
	closed  bool
	streams sync.WaitGroup
}

// runServeBaseline is the serve-baseline subcommand.
func runServeBaseline(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("livedash-bench serve-baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9100", "listen address (loopback only)")
	var c baselineConfig
	fs.Float64Var(&c.rate, "rate", 1, "ticks per second (0.01…1000)")
	fs.IntVar(&c.batch, "batch", 1, "events per tick (1…1024)")
	fs.IntVar(&c.size, "size", 200, "approximate bytes per event, id and framing included (up to 1 MiB)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("serve-baseline: unexpected argument %q", fs.Arg(0))
	case !(c.rate >= 0.01 && c.rate <= 1000): // NaN too
		return fmt.Errorf("serve-baseline: -rate %v, want 0.01…1000", c.rate)
	case c.batch < 1 || c.batch > baselineQueue:
		return fmt.Errorf("serve-baseline: -batch %d, want 1…%d", c.batch, baselineQueue)
	case c.size < 1 || c.size > 1<<20:
		return fmt.Errorf("serve-baseline: -size %d, want 1…%d", c.size, 1<<20)
	case c.batch*c.size > 16<<20:
		return fmt.Errorf("serve-baseline: -batch × -size %d, want at most 16 MiB per tick", c.batch*c.size)
	}
	listenAddr, err := loopbackAddr(ctx, *addr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "serve-baseline: listening on http://%s/\n", ln.Addr())
	return serveBaseline(ctx, ln, c)
}

// loopbackAddr checks that host:port names only loopback addresses and
// returns it with the host resolved, so the listener binds what was checked.
func loopbackAddr(ctx context.Context, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return "", fmt.Errorf("serve-baseline: -addr %q: want a loopback host:port", addr)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return "", fmt.Errorf("serve-baseline: -addr host %q does not resolve", host)
	}
	for _, ip := range ips {
		if !ip.Unmap().IsLoopback() {
			return "", fmt.Errorf("serve-baseline: -addr host %q resolves to %v: only loopback addresses are allowed", host, ip.Unmap())
		}
	}
	return net.JoinHostPort(ips[0].Unmap().String(), port), nil
}

// serveBaseline serves the baseline hub on ln until ctx ends (or serving
// fails), then ends every stream and returns once no stream and none of its
// own goroutines runs.
func serveBaseline(ctx context.Context, ln net.Listener, c baselineConfig) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h := &baselineHub{done: make(chan struct{})}
	h.tail.Store(&node{ready: make(chan struct{})})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { h.publishEvery(ctx, c) })
	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- srv.Serve(ln) })

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	cancel()
	h.mu.Lock()
	h.closed = true
	close(h.done)
	h.mu.Unlock()
	// Streams return on done; one blocked in a write ends when Close
	// closes its connection.
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	if srv.Shutdown(sctx) != nil {
		_ = srv.Close()
	}
	scancel()
	h.streams.Wait()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// publishEvery publishes c.batch events c.rate times a second until ctx ends.
func (h *baselineHub) publishEvery(ctx context.Context, c baselineConfig) {
	t := time.NewTicker(time.Duration(float64(time.Second) / c.rate))
	defer t.Stop()
	var id uint64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			data := c.encode(make([]byte, 0, c.batch*(c.size+64)), id+1, now)
			id += uint64(c.batch)
			h.publish(data, id)
		}
	}
}

// encode appends c.batch events with ids from first on, stamped with now.
func (c baselineConfig) encode(b []byte, first uint64, now time.Time) []byte {
	ts := now.UnixMilli()
	for id := first; id < first+uint64(c.batch); id++ {
		start := len(b)
		b = append(b, "id: "...)
		b = strconv.AppendUint(b, id, 10)
		b = append(b, "\nevent: frame\ndata: {\"ts\":"...)
		b = strconv.AppendInt(b, ts, 10)
		b = append(b, `,"p":"`...)
		for range c.size - (len(b) - start) - len("\"}\n\n") {
			b = append(b, 'x')
		}
		b = append(b, "\"}\n\n"...)
	}
	return b
}

// publish appends one tick's node to the list and wakes its waiters.
func (h *baselineHub) publish(data []byte, last uint64) {
	n := &node{data: data, last: last, ready: make(chan struct{})}
	old := h.tail.Load()
	old.next = n
	h.tail.Store(n)
	close(old.ready)
}

// ServeHTTP streams every tick published after the stream started. When
// woken it writes all the nodes it has not sent in one write and one flush;
// a single node is written straight from the shared bytes.
func (h *baselineHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	h.streams.Add(1)
	h.mu.Unlock()
	defer h.streams.Done()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}
	cur := h.tail.Load() // the last node sent (here: none of it will be)
	var buf []byte
	var deadline time.Time
	for {
		select {
		case <-cur.ready:
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		}
		if h.tail.Load().last-cur.last > baselineQueue {
			return // too far behind: cut
		}
		cur = cur.next
		out := cur.data
		if isClosed(cur.ready) {
			buf = append(buf[:0], out...)
			for isClosed(cur.ready) {
				cur = cur.next
				buf = append(buf, cur.data...)
			}
			out = buf
		}
		// The deadline is moved only when half of it is used: not a timer
		// update per write.
		if now := time.Now(); deadline.Sub(now) < baselineWriteTimeout/2 {
			deadline = now.Add(baselineWriteTimeout)
			_ = rc.SetWriteDeadline(deadline)
		}
		if _, err := w.Write(out); err != nil || rc.Flush() != nil {
			return
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
