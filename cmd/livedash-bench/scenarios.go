package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type bench struct {
	o      options
	target *url.URL
}

// group is a set of clients sharing a stats object.
type group struct {
	st      atomic.Pointer[stats]
	clients []*client
}

func (b *bench) newGroup(n, offset int) *group {
	g := &group{}
	g.st.Store(newStats())
	for i := range n {
		g.clients = append(g.clients, &client{b: b, i: offset + i, st: &g.st})
	}
	return g
}

// follow keeps c streaming until ctx ends, reconnecting (with its last ID,
// after a short random pause, like a browser) when a connection ends.
func (b *bench) follow(ctx context.Context, c *client, connected func()) {
	first := true
	for ctx.Err() == nil {
		err := c.stream(ctx, !first, func() {
			if connected != nil {
				connected()
				connected = nil
			}
		})
		if ctx.Err() != nil {
			return
		}
		st := c.st.Load()
		st.errors.Add(1)
		if !first {
			st.reconnects.Add(1)
		}
		_ = err
		first = false
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(100+rand.IntN(400)) * time.Millisecond):
		}
	}
}

// connectAll starts every client of g, at most 256 dialling at a time (the
// listen backlog), and waits until each got its 200.
func (b *bench) connectAll(ctx context.Context, g *group, wg *sync.WaitGroup) error {
	sem := make(chan struct{}, 256)
	var ready sync.WaitGroup
	for _, c := range g.clients {
		sem <- struct{}{}
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			done := func() { once.Do(func() { <-sem; ready.Done() }) }
			defer done()
			b.follow(ctx, c, done)
		}()
	}
	waited := make(chan struct{})
	go func() { ready.Wait(); close(waited) }()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// proc is a reading of /proc/<pid>.
type proc struct {
	cpu time.Duration // utime+stime
	rss int64         // bytes
}

func readProc(pid int) (proc, error) {
	var p proc
	if pid <= 0 {
		return p, nil
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, err
	}
	// Fields after the command name (which may contain spaces) in parentheses.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return p, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	p.cpu = time.Duration(ut+st) * time.Second / clkTck
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			p.rss = kb << 10
		}
	}
	return p, nil
}

func (b *bench) steady(ctx context.Context, w io.Writer) error {
	o := b.o
	base, err := readProc(o.pid)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	g := b.newGroup(o.clients, 0)
	var wg sync.WaitGroup
	t0 := time.Now()
	if err := b.connectAll(runCtx, g, &wg); err != nil {
		return err
	}
	fmt.Fprintf(w, "connected %d clients in %v over %d source addresses\n", o.clients, fmtDur(time.Since(t0)), o.sources)
	if o.pid > 0 {
		// Accepting, with -tls the handshakes, and the first replay.
		if c, err := readProc(o.pid); err == nil {
			fmt.Fprintf(w, "server cpu while connecting %.2fs (%.0fµs per client)\n", (c.cpu - base.cpu).Seconds(), float64((c.cpu-base.cpu).Microseconds())/float64(o.clients))
		}
	}
	sleep(ctx, o.warmup)
	connected, _ := readProc(o.pid)
	st := newStats()
	g.st.Store(st)
	p0, _ := readProc(o.pid)
	self0, _ := readProc(os.Getpid())
	sleep(ctx, o.duration)
	p1, _ := readProc(o.pid)
	self1, _ := readProc(os.Getpid())
	elapsed := time.Since(st.start)
	g.st.Store(newStats())
	stop()
	wg.Wait()

	frames := st.frames.Load()
	fmt.Fprintf(w, "target %s  scenario steady  clients %d  measured %v\n", b.target, o.clients, fmtDur(elapsed))
	fmt.Fprintf(w, "latency  p50 %s  p90 %s  p99 %s  max %s\n",
		fmtDur(st.percentile(.5)), fmtDur(st.percentile(.9)), fmtDur(st.percentile(.99)), fmtDur(st.max()))
	fmt.Fprintf(w, "frames %d  deliveries/s %.0f  gaps %d  dups %d  resets %d  conn_ends %d  no_ts %d\n",
		frames, float64(frames)/elapsed.Seconds(), st.gaps.Load(), st.dups.Load(), st.resets.Load(), st.errors.Load(), st.noTS.Load())
	if o.pid > 0 {
		cpu := p1.cpu - p0.cpu
		fmt.Fprintf(w, "server cpu %.2fs (%.0f%% of one core)  per client-second %.1fµs  per delivery %.2fµs\n",
			cpu.Seconds(), 100*cpu.Seconds()/elapsed.Seconds(),
			float64(cpu.Microseconds())/(float64(o.clients)*elapsed.Seconds()),
			float64(cpu.Microseconds())/float64(max(frames, 1)))
		fmt.Fprintf(w, "server rss base %d MiB  connected %d MiB (+%.1f KiB per stream)  end %d MiB\n",
			base.rss>>20, connected.rss>>20, float64(connected.rss-base.rss)/1024/float64(o.clients), p1.rss>>20)
	}
	// The load tool shares the cores: what it spends (with -tls, decrypting
	// every delivery) is taken from the server.
	fmt.Fprintf(w, "load tool cpu %.2fs (%.0f%% of one core)\n", (self1.cpu - self0.cpu).Seconds(), 100*(self1.cpu-self0.cpu).Seconds()/elapsed.Seconds())
	if len(g.clients) > 0 && g.clients[0].livedash.Load() {
		b.scrape(w)
	}
	return nil
}

// storm: control clients stay connected; storm clients drop, miss -behind
// frames, then all reconnect in the same instant with their last IDs.
func (b *bench) storm(ctx context.Context, w io.Writer) error {
	o := b.o
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	control := b.newGroup(o.control, 0)
	var wg sync.WaitGroup
	if err := b.connectAll(runCtx, control, &wg); err != nil {
		return err
	}
	storm := b.newGroup(o.storm, o.control)
	stormCtx, dropStorm := context.WithCancel(runCtx)
	defer dropStorm()
	var swg sync.WaitGroup
	if err := b.connectAll(stormCtx, storm, &swg); err != nil {
		return err
	}
	fmt.Fprintf(w, "connected %d control + %d storm clients\n", o.control, o.storm)
	var probe *probeProc
	if o.probe > 0 {
		p, err := b.startProbe(runCtx, o.probe)
		if err != nil {
			return err
		}
		probe = p
		defer probe.stop()
	}
	sleep(ctx, o.warmup)
	baseline := newStats()
	control.st.Store(baseline)
	if probe != nil {
		if err := probe.mark(); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
	}
	sleep(ctx, o.duration)
	baseElapsed := time.Since(baseline.start)
	if probe != nil {
		if err := probe.mark(); err != nil { // the wait below is not measured
			return fmt.Errorf("probe: %w", err)
		}
	}

	// Drop the storm clients, wait until the head is -behind frames past
	// the newest frame any of them saw.
	dropStorm()
	swg.Wait()
	var stormLast uint64
	for _, c := range storm.clients {
		stormLast = max(stormLast, c.seq.Load())
	}
	head := func() uint64 {
		var h uint64
		for _, c := range control.clients {
			h = max(h, c.seq.Load())
		}
		return h
	}
	for head() < stormLast+uint64(o.behind) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	target := head()
	during := newStats()
	control.st.Store(during)
	if probe != nil {
		if err := probe.mark(); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
	}
	p0, _ := readProc(o.pid)
	self0, _ := readProc(os.Getpid())
	storm.st.Store(newStats())
	for _, c := range storm.clients {
		c.target.Store(target)
		c.caughtAt.Store(0)
	}
	var start2 sync.WaitGroup
	gate := make(chan struct{})
	for _, c := range storm.clients {
		wg.Add(1)
		start2.Add(1)
		go func() {
			defer wg.Done()
			start2.Done()
			<-gate
			for runCtx.Err() == nil {
				if err := c.stream(runCtx, true, nil); runCtx.Err() != nil {
					return
				} else {
					_ = err
					c.st.Load().errors.Add(1)
				}
				time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
			}
		}()
	}
	start2.Wait()
	start := time.Now()
	close(gate)
	deadline := start.Add(30 * time.Second)
	for time.Now().Before(deadline) {
		n := 0
		for _, c := range storm.clients {
			if c.caughtAt.Load() != 0 {
				n++
			}
		}
		if n == len(storm.clients) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	var catch []time.Duration
	for _, c := range storm.clients {
		if t := c.caughtAt.Load(); t != 0 {
			catch = append(catch, time.Unix(0, t).Sub(start))
		}
	}
	stormElapsed := time.Since(during.start)
	p1, _ := readProc(o.pid)
	self1, _ := readProc(os.Getpid())
	sst := storm.st.Load()
	var probed []probeWindow
	if probe != nil {
		ws, err := probe.report()
		if err != nil || len(ws) != 3 {
			return fmt.Errorf("probe: %d windows, %v", len(ws), err)
		}
		probed = []probeWindow{ws[0], ws[2]} // baseline, during (ws[1]: the wait between)
	}
	stop()
	wg.Wait()

	slices.Sort(catch)
	q := func(p float64) time.Duration {
		if len(catch) == 0 {
			return 0
		}
		return catch[min(len(catch)-1, int(p*float64(len(catch))))]
	}
	fmt.Fprintf(w, "target %s  scenario storm  storm %d  behind %d (head %d, storm clients' newest %d)  control %d\n",
		b.target, o.storm, o.behind, target, stormLast, o.control)
	fmt.Fprintf(w, "caught up %d/%d  catch-up p50 %s  p99 %s  max %s  (first %s  p10 %s  p90 %s)\n",
		len(catch), o.storm, fmtDur(q(.5)), fmtDur(q(.99)), fmtDur(q(1)), fmtDur(q(0)), fmtDur(q(.1)), fmtDur(q(.9)))
	fmt.Fprintf(w, "storm clients: frames %d  gaps %d  dups %d  resets %d  conn_ends %d\n",
		sst.frames.Load(), sst.gaps.Load(), sst.dups.Load(), sst.resets.Load(), sst.errors.Load())
	fmt.Fprintf(w, "control baseline (%s): p50 %s  p99 %s  max %s  |  during storm (%s): p50 %s  p99 %s  max %s  gaps %d dups %d\n",
		fmtDur(baseElapsed), fmtDur(baseline.percentile(.5)), fmtDur(baseline.percentile(.99)), fmtDur(baseline.max()),
		fmtDur(stormElapsed), fmtDur(during.percentile(.5)), fmtDur(during.percentile(.99)), fmtDur(during.max()),
		baseline.gaps.Load()+during.gaps.Load(), baseline.dups.Load()+during.dups.Load())
	if probed != nil {
		pb, pd := probed[0], probed[1]
		fmt.Fprintf(w, "probe (own process, %d clients) baseline (%s): p50 %s  p99 %s  max %s  |  during storm (%s): p50 %s  p99 %s  max %s  gaps %d dups %d\n",
			o.probe, fmtDur(pb.elapsed), fmtDur(pb.p50), fmtDur(pb.p99), fmtDur(pb.max),
			fmtDur(pd.elapsed), fmtDur(pd.p50), fmtDur(pd.p99), fmtDur(pd.max), pb.gaps+pd.gaps, pb.dups+pd.dups)
	}
	if o.pid > 0 {
		fmt.Fprintf(w, "server cpu during storm %.2fs\n", (p1.cpu - p0.cpu).Seconds())
	}
	// The load tool shares the cores: what it spent is not the server's.
	fmt.Fprintf(w, "load tool cpu during storm %.2fs\n", (self1.cpu - self0.cpu).Seconds())
	return nil
}

// scrape prints the server's stream metrics (livedash only): frames per
// write shows whether ticks are coalesced into one write.
func (b *bench) scrape(w io.Writer) {
	u := *b.target
	u.Path, u.RawQuery = "/metrics", ""
	resp, err := b.httpClient(3 * time.Second).Get(u.String())
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var sum, count float64
	for sc.Scan() {
		l := sc.Text()
		if v, ok := strings.CutPrefix(l, "livedash_stream_queue_depth_sum "); ok {
			sum, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(l, "livedash_stream_queue_depth_count "); ok {
			count, _ = strconv.ParseFloat(v, 64)
		}
		if strings.HasPrefix(l, "livedash_stream_disconnects_total") && !strings.HasSuffix(l, " 0") {
			fmt.Fprintln(w, "server:", l)
		}
	}
	if count > 0 {
		fmt.Fprintf(w, "server: %.0f live writes, %.2f frames per write (whole run)\n", count, sum/count)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
