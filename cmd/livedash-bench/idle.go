package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// h2StreamsPerConn is how many streams the idle scenario multiplexes over
// one HTTP/2 connection: below the 250 concurrent streams Go's server
// allows per connection by default, as a browser's tabs would share one.
const h2StreamsPerConn = 200

// idle measures the server's memory per idle stream: -clients streams on
// -url (a topic that never gets a frame, e.g. ?topics=loadbench_idle, on a
// freshly started server), the server's RSS read before they connect and
// -warmup after; (connected - before) / streams is the cost of one. Over
// HTTP/1.1 each stream is a connection of its own (with -tls, a TLS
// connection); with -h2 they are multiplexed over ceil(N/200) HTTP/2
// connections. The streams are then held for -duration and every one must
// still be open at the end.
func (b *bench) idle(ctx context.Context, w io.Writer) error {
	o := b.o
	if o.pid <= 0 {
		return errors.New("idle: -pid is needed for the server's RSS")
	}
	base, err := readProc(o.pid)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop() // before wg.Wait
	t0 := time.Now()
	var conns int
	var ended func() int64
	var h2 *h2Streams
	proto := "HTTP/1.1"
	if o.tls {
		proto = "HTTP/1.1 TLS"
	}
	if o.h2 {
		proto = "HTTP/2 TLS"
		if h2, err = b.connectH2(runCtx, o.clients, &wg); err != nil {
			return err
		}
		conns, ended = h2.conns, h2.ended.Load
	} else {
		g := b.newGroup(o.clients, 0)
		if err := b.connectAll(runCtx, g, &wg); err != nil {
			return err
		}
		conns, ended = o.clients, func() int64 { return g.st.Load().errors.Load() }
	}
	fmt.Fprintf(w, "connected %d idle streams over %d connections (%s) in %v\n", o.clients, conns, proto, fmtDur(time.Since(t0)))
	sleep(ctx, o.warmup)
	connected, err := readProc(o.pid)
	if err != nil {
		return err
	}
	sleep(ctx, o.duration)
	end, err := readProc(o.pid)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fmt.Fprintf(w, "idle %s  streams %d  connections %d  server rss base %d MiB  connected %d MiB (+%.1f KiB per stream)  end %d MiB  streams ended early %d\n",
		proto, o.clients, conns, base.rss>>20, connected.rss>>20, float64(connected.rss-base.rss)/1024/float64(o.clients), end.rss>>20, ended())
	if err := h2.firstEnd(); err != nil {
		fmt.Fprintf(w, "first stream that ended early: %v\n", err)
	}
	return nil
}

// h2Streams are the idle scenario's HTTP/2 streams.
type h2Streams struct {
	conns int
	ended atomic.Int64          // streams that ended before the scenario did
	first atomic.Pointer[error] // why the first of them ended
}

// firstEnd is why the first stream that ended early ended (nil: none did;
// h nil: HTTP/1.1, not recorded).
func (h *h2Streams) firstEnd() error {
	if h == nil {
		return nil
	}
	if err := h.first.Load(); err != nil {
		return *err
	}
	return nil
}

// connectH2 opens n streams on the target over ceil(n/h2StreamsPerConn)
// HTTP/2 connections (TLS, ALPN h2 only), each connection from the next
// source address, and returns once every stream has its 200. Each stream's
// body is read (and dropped) in a goroutine of its own, added to wg, until
// ctx ends; streams that end before that are counted. The connections are
// closed when ctx ends.
func (b *bench) connectH2(ctx context.Context, n int, wg *sync.WaitGroup) (*h2Streams, error) {
	var p http.Protocols
	p.SetHTTP2(true)
	var next atomic.Int64
	tr := &http.Transport{
		Protocols:       &p,
		TLSClientConfig: tlsConfig("h2"),
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: b.sourceIP(int(next.Add(1) - 1))}, Timeout: 10 * time.Second}
			return d.DialContext(ctx, network, addr)
		},
	}
	k := (n + h2StreamsPerConn - 1) / h2StreamsPerConn
	ccs := make([]*http.ClientConn, 0, k)
	closeAll := func() {
		for _, cc := range ccs {
			_ = cc.Close()
		}
	}
	for range k {
		cc, err := tr.NewClientConn(ctx, "https", b.target.Host)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("h2 connection: %w", err)
		}
		ccs = append(ccs, cc)
	}
	wg.Go(func() { <-ctx.Done(); closeAll() })

	h := &h2Streams{conns: k}
	sem := make(chan struct{}, 256) // streams being opened at once
	errc := make(chan error, 1)
	var ready sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		ready.Add(1)
		wg.Go(func() {
			resp, err := b.openH2Stream(ctx, ccs[i/h2StreamsPerConn])
			<-sem
			ready.Done()
			if err != nil {
				select {
				case errc <- fmt.Errorf("h2 stream %d: %w", i, err):
				default:
				}
				return
			}
			defer resp.Body.Close()
			buf := make([]byte, 512)
			for {
				if _, err = resp.Body.Read(buf); err != nil {
					break
				}
			}
			if ctx.Err() == nil {
				h.ended.Add(1)
				h.first.CompareAndSwap(nil, &err)
			}
		})
	}
	ready.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	return h, ctx.Err()
}

// openH2Stream sends one stream request on cc and returns its response
// once the status (200, HTTP/2) is read.
func (b *bench) openH2Stream(ctx context.Context, cc *http.ClientConn) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.target.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if b.o.basic != "" {
		user, password, _ := strings.Cut(b.o.basic, ":")
		req.SetBasicAuth(user, password)
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s %s", errStatus, resp.Proto, resp.Status)
	}
	return resp, nil
}
