package hub

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"livedash/config"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

// memSink is a transport that records what a subscriber yields: events as
// "hello", "reset:<reason>", "frame:<seq>", "hb". It encodes a frame as its
// seq and a comma, so that parts decode back into seqs.
type memSink struct {
	mu     sync.Mutex
	events []string
	queued []string
	writes int
	wake   chan struct{} // gets a value after every write (never blocks)
}

func newMemSink() *memSink { return &memSink{wake: make(chan struct{}, 1)} }

func memEncode(b []byte, id store.ID, _ []byte) []byte {
	return append(strconv.AppendUint(b, id.Seq, 10), ',')
}

func (m *memSink) Hello(Hello, string) {
	m.mu.Lock()
	m.queued = append(m.queued, "hello")
	m.mu.Unlock()
}
func (m *memSink) Reset(r Reset, _ string) {
	m.mu.Lock()
	m.queued = append(m.queued, "reset:"+string(r.Reason))
	m.mu.Unlock()
}

func (m *memSink) Write(parts [][]byte, n int) (int, error) {
	m.mu.Lock()
	m.flushLocked()
	size, got := 0, 0
	for _, p := range parts {
		size += len(p)
		for s := range strings.SplitSeq(strings.TrimSuffix(string(p), ","), ",") {
			m.events = append(m.events, "frame:"+s)
			got++
		}
	}
	m.writes++
	m.mu.Unlock()
	m.signal()
	if got != n {
		return size, fmt.Errorf("sink got %d events, told %d", got, n)
	}
	return size, nil
}

func (m *memSink) Heartbeat(string, time.Time) (int, error) {
	m.mu.Lock()
	m.flushLocked()
	m.events = append(m.events, "hb")
	m.writes++
	m.mu.Unlock()
	m.signal()
	return 1, nil
}

func (m *memSink) Flush() (int, error) {
	m.mu.Lock()
	n := len(m.queued)
	if n > 0 {
		m.flushLocked()
		m.writes++
	}
	m.mu.Unlock()
	if n > 0 {
		m.signal()
	}
	return n, nil
}

func (m *memSink) flushLocked() {
	m.events = append(m.events, m.queued...)
	m.queued = nil
}

func (m *memSink) Interrupt() {}

func (m *memSink) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// waitEvents waits until the sink recorded n events and returns them.
func (m *memSink) waitEvents(tb testing.TB, n int) []string {
	tb.Helper()
	deadline := time.After(10 * time.Second)
	for {
		m.mu.Lock()
		if len(m.events) >= n {
			ev := append([]string(nil), m.events...)
			m.mu.Unlock()
			return ev
		}
		m.mu.Unlock()
		select {
		case <-m.wake:
		case <-deadline:
			m.mu.Lock()
			defer m.mu.Unlock()
			tb.Fatalf("waited for %d events, have %q", n, m.events)
		}
	}
}

// hubEnv is a bbolt store in t.TempDir with a hub publishing its commits.
type hubEnv struct {
	st  *bolt.Store
	hub *Hub
	enc *Encoding
}

func newHubEnv(tb testing.TB, cfg config.Stream) *hubEnv {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "store.db")
	st, err := bolt.Open(bolt.Options{Path: path, NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	h := New(st, cfg, Options{})
	st.OnCommit(h.Publish)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			tb.Errorf("hub shutdown: %v", err)
		}
		if err := st.Close(); err != nil {
			tb.Error(err)
		}
		for _, err := range bolt.CheckFile(path) {
			tb.Error(err)
		}
	})
	return &hubEnv{st: st, hub: h, enc: h.NewEncoding(memEncode)}
}

func (e *hubEnv) append(tb testing.TB, topics ...string) []store.Frame {
	tb.Helper()
	bs := make([]store.Batch, len(topics))
	for i, t := range topics {
		bs[i] = store.Batch{Topic: t, Time: time.Now(), Samples: []store.Sample{{Name: "v", Value: float64(i)}}}
	}
	fs, err := e.st.Append(bs)
	if err != nil {
		tb.Fatal(err)
	}
	return fs
}

// run starts a subscriber with req on a memSink; stop ends it and returns
// its disconnect reason.
func (e *hubEnv) run(tb testing.TB, req Request) (sub *Subscriber, sink *memSink, stop func() string) {
	tb.Helper()
	sub, reason := e.hub.Subscribe(netip.MustParseAddr("127.0.0.1"))
	if sub == nil {
		tb.Fatalf("subscribe: %s", reason)
	}
	sink = newMemSink()
	gone := make(chan struct{})
	done := make(chan string, 1)
	go func() {
		defer sub.Close()
		done <- sub.Run(req, e.enc, sink, gone)
	}()
	var once sync.Once
	var r string
	stop = func() string {
		once.Do(func() {
			close(gone)
			select {
			case r = <-done:
			case <-time.After(30 * time.Second):
				tb.Errorf("Run did not return within 30s of its client going away")
			}
		})
		return r
	}
	tb.Cleanup(func() { stop() })
	return sub, sink, stop
}

func frames(seqs ...uint64) []string {
	out := make([]string, len(seqs))
	for i, s := range seqs {
		out[i] = "frame:" + strconv.FormatUint(s, 10)
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A subscriber without a cursor says hello and gets live frames only; one
// with a cursor gets the replay up to the head it registered at, then live
// frames, with neither gap nor duplicate at the seam; the encoding of a
// node is built once and shared.
func TestSubscriberReplayAndLive(t *testing.T) {
	e := newHubEnv(t, config.Stream{})
	e.append(t, "cpu", "mem", "cpu") // seqs 1-3
	_, live, _ := e.run(t, Request{})
	_, resumed, _ := e.run(t, Request{Cursor: store.ID{Epoch: e.st.Epoch(), Seq: 1}.String()})
	_, cpu, _ := e.run(t, Request{Cursor: store.ID{Epoch: e.st.Epoch(), Seq: 0}.String(), Topics: ParseTopics([]string{"cpu"})})
	live.waitEvents(t, 1)
	resumed.waitEvents(t, 3)
	cpu.waitEvents(t, 3)
	e.append(t, "mem", "cpu") // 4-5
	if got, want := live.waitEvents(t, 3), append([]string{"hello"}, frames(4, 5)...); !equal(got, want) {
		t.Fatalf("live: %q, want %q", got, want)
	}
	if got, want := resumed.waitEvents(t, 5), append([]string{"hello"}, frames(2, 3, 4, 5)...); !equal(got, want) {
		t.Fatalf("resumed: %q, want %q", got, want)
	}
	if got, want := cpu.waitEvents(t, 4), append([]string{"hello"}, frames(1, 3, 5)...); !equal(got, want) {
		t.Fatalf("cpu: %q, want %q", got, want)
	}
	// hello and the replayed frames went out in one write.
	if resumed.writes != 2 { // hello+replay, then the live node
		t.Fatalf("resumed: %d writes", resumed.writes)
	}
}

// Change mid-stream: the subscriber says hello again, replays after the new
// cursor and goes on live with the new topics — nothing lost, nothing
// repeated, in seq order within each subscription.
func TestSubscriberChange(t *testing.T) {
	e := newHubEnv(t, config.Stream{})
	e.append(t, "cpu", "mem") // 1-2
	sub, sink, stop := e.run(t, Request{Topics: ParseTopics([]string{"cpu"})})
	sink.waitEvents(t, 1)
	e.append(t, "cpu", "mem") // 3-4
	sink.waitEvents(t, 2)
	// Switch to mem, resuming after 3 (the last frame this client saw).
	sub.Change(Request{Topics: ParseTopics([]string{"mem"}), Cursor: store.ID{Epoch: e.st.Epoch(), Seq: 3}.String()})
	got := sink.waitEvents(t, 4)
	e.append(t, "cpu", "mem") // 5-6
	got = sink.waitEvents(t, 5)
	want := []string{"hello", "frame:3", "hello", "frame:4", "frame:6"}
	if !equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	// A change with a malformed cursor gets a reset, then live.
	sub.Change(Request{Cursor: "nonsense"})
	sink.waitEvents(t, 7)
	e.append(t, "cpu") // 7
	got = sink.waitEvents(t, 8)
	if want := append(want, "hello", "reset:malformed", "frame:7"); !equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	if r := stop(); r != DisconnectClient {
		t.Fatalf("reason %q", r)
	}
}

// A Change with Continue goes on from the subscriber's position: the new
// topics from there on, the shared ones without gap or duplicate.
func TestSubscriberChangeContinue(t *testing.T) {
	e := newHubEnv(t, config.Stream{})
	sub, sink, stop := e.run(t, Request{Topics: ParseTopics([]string{"cpu"})})
	sink.waitEvents(t, 1)
	e.append(t, "cpu", "mem") // 1-2
	sink.waitEvents(t, 2)
	sub.Change(Request{Topics: ParseTopics([]string{"cpu,mem"}), Cursor: "ignored", Continue: true})
	sink.waitEvents(t, 3)
	e.append(t, "mem", "cpu") // 3-4
	got := sink.waitEvents(t, 5)
	if want := []string{"hello", "frame:1", "hello", "frame:3", "frame:4"}; !equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	if r := stop(); r != DisconnectClient {
		t.Fatalf("reason %q", r)
	}
}

// Cursor checks: each impossible cursor gets its reset, then live frames.
func TestSubscriberResets(t *testing.T) {
	cfg := config.Stream{ReplayMaxFrames: 5}
	e := newHubEnv(t, cfg)
	for range 10 {
		e.append(t, "cpu")
	}
	epoch := e.st.Epoch()
	for _, tc := range []struct{ cursor, reason string }{
		{"abc", "malformed"},
		{store.ID{Epoch: epoch ^ 1, Seq: 3}.String(), "unknown_epoch"},
		{store.ID{Epoch: epoch, Seq: 99}.String(), "future"},
		{store.ID{Epoch: epoch, Seq: 2}.String(), "too_far"},
	} {
		_, sink, stop := e.run(t, Request{Cursor: tc.cursor})
		if got := sink.waitEvents(t, 2); got[1] != "reset:"+tc.reason {
			t.Fatalf("%s: %q", tc.cursor, got)
		}
		stop()
	}
}

// The lag cut: a subscriber whose sink blocks falls more than QueueSize
// frames behind and is disconnected as slow; the publisher never waits.
func TestSubscriberSlowCut(t *testing.T) {
	e := newHubEnv(t, config.Stream{QueueSize: 4})
	sub, reason := e.hub.Subscribe(netip.MustParseAddr("127.0.0.1"))
	if sub == nil {
		t.Fatal(reason)
	}
	defer sub.Close()
	block := make(chan struct{})
	sink := &blockingSink{memSink: newMemSink(), block: block}
	done := make(chan string, 1)
	go func() { done <- sub.Run(Request{}, e.enc, sink, nil) }()
	sink.waitEvents(t, 1) // hello
	e.append(t, "cpu")    // the subscriber blocks writing this one
	for range 10 {
		e.append(t, "cpu") // never waits for the subscriber
	}
	close(block)
	select {
	case r := <-done:
		if r != DisconnectSlow {
			t.Fatalf("reason %q", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not cut")
	}
}

type blockingSink struct {
	*memSink
	block chan struct{}
}

func (b *blockingSink) Write(parts [][]byte, n int) (int, error) {
	<-b.block
	return b.memSink.Write(parts, n)
}

// Shutdown kicks every subscriber (reason shutdown) and returns once all
// are closed; later ones are turned away.
func TestSubscriberShutdown(t *testing.T) {
	e := newHubEnv(t, config.Stream{DrainWindow: config.Duration(50 * time.Millisecond)})
	var subs []*Subscriber
	var dones []chan string
	for range 3 {
		sub, _ := e.hub.Subscribe(netip.Addr{})
		sink := newMemSink()
		d := make(chan string, 1)
		go func() {
			defer sub.Close()
			d <- sub.Run(Request{}, e.enc, sink, nil)
		}()
		sink.waitEvents(t, 1)
		subs = append(subs, sub)
		dones = append(dones, d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.hub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range dones {
		select {
		case r := <-d:
			if r != DisconnectShutdown {
				t.Fatalf("reason %q", r)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a subscriber's Run did not return after Shutdown")
		}
	}
	if s, r := e.hub.Subscribe(netip.Addr{}); s != nil || r != RejectShutdown {
		t.Fatalf("after shutdown: %v %q", s, r)
	}
}

// BenchmarkReplay1000: one op = replaying 1,000 frames of ~500 B from bbolt
// to one subscriber (chunked reads, one write per chunk). The replay cache is
// emptied before every op, so that the first chunk is read too.
func BenchmarkReplay1000(b *testing.B) {
	e := newHubEnv(b, config.Stream{})
	pad := strings.Repeat("x", 400)
	for range 10 {
		bs := make([]store.Batch, 100)
		for i := range bs {
			bs[i] = store.Batch{Topic: "synthetic", Samples: []store.Sample{{Name: "s", Labels: map[string]string{"p": pad}, Value: 1}}}
		}
		if _, err := e.st.Append(bs); err != nil {
			b.Fatal(err)
		}
	}
	enc := e.hub.NewEncoding(func(buf []byte, _ store.ID, js []byte) []byte { return append(buf, js...) })
	sink := &discardSink{}
	s := &Subscriber{h: e.hub, enc: enc, sink: sink, done: make(chan struct{})}
	from := store.ID{Epoch: e.st.Epoch(), Seq: 0}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		e.hub.replays.clear()
		if reason := s.replay(from, 1000, ""); reason != "" {
			b.Fatal(reason)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/frame")
	b.ReportMetric(float64(sink.writes)/float64(b.N), "writes/op")
}

type discardSink struct{ writes int }

func (*discardSink) Hello(Hello, string) {}
func (*discardSink) Reset(Reset, string) {}
func (d *discardSink) Write(parts [][]byte, _ int) (int, error) {
	d.writes++
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return n, nil
}
func (*discardSink) Heartbeat(string, time.Time) (int, error) { return 0, nil }
func (*discardSink) Flush() (int, error)                      { return 0, nil }
func (*discardSink) Interrupt()                               {}

// The per-client stream limit counts an IPv6 /64 as one client (one
// subscriber's network holds billions of addresses), and an IPv4-mapped
// address as its IPv4 address.
func TestPerClientLimitSharesSlash64(t *testing.T) {
	cfg := config.Default().Stream
	cfg.MaxStreamsPerIP = 2
	e := newHubEnv(t, cfg)
	var subs []*Subscriber
	defer func() {
		for _, s := range subs {
			s.Close()
		}
	}()
	for _, a := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"} {
		s, reason := e.hub.Subscribe(netip.MustParseAddr(a))
		if s == nil {
			t.Fatalf("Subscribe(%s) refused: %s", a, reason)
		}
		subs = append(subs, s)
	}
	if s, reason := e.hub.Subscribe(netip.MustParseAddr("2001:db8:1:2:abcd:ef01:2345:6789")); s != nil || reason != RejectPerIP {
		t.Fatalf("a third address of the same /64 was admitted (%q)", reason)
	}
	s, reason := e.hub.Subscribe(netip.MustParseAddr("2001:db8:1:3::1"))
	if s == nil {
		t.Fatalf("another /64 refused: %s", reason)
	}
	subs = append(subs, s)
	for _, a := range []string{"192.0.2.1", "::ffff:192.0.2.1"} {
		s, reason := e.hub.Subscribe(netip.MustParseAddr(a))
		if s == nil {
			t.Fatalf("Subscribe(%s) refused: %s", a, reason)
		}
		subs = append(subs, s)
	}
	if s, _ := e.hub.Subscribe(netip.MustParseAddr("::ffff:192.0.2.1")); s != nil {
		s.Close()
		t.Fatal("the mapped form of an IPv4 address got a quota of its own")
	}
}

// lateSink is a memSink that notes an Interrupt, and whether one came
// after its Run returned.
type lateSink struct {
	*memSink
	interrupted chan struct{} // gets a value at every Interrupt (never blocks)
	ended, late atomic.Bool
}

func (l *lateSink) Interrupt() {
	if l.ended.Load() {
		l.late.Store(true)
	}
	select {
	case l.interrupted <- struct{}{}:
	default:
	}
}

// A subscriber whose Run returned while Shutdown was spreading its kicks
// over the drain window is not interrupted: the transport may have
// released what its sink writes to (an HTTP/2 response writer is unusable
// once its handler returns).
func TestNoInterruptAfterRun(t *testing.T) {
	e := newHubEnv(t, config.Stream{DrainWindow: config.Duration(2 * time.Second)})
	var sinks [2]*lateSink
	var gones [2]chan struct{}
	var dones [2]chan string
	for i := range 2 {
		sub, _ := e.hub.Subscribe(netip.Addr{})
		sinks[i] = &lateSink{memSink: newMemSink(), interrupted: make(chan struct{}, 1)}
		gones[i], dones[i] = make(chan struct{}), make(chan string, 1)
		go func() {
			defer sub.Close()
			r := sub.Run(Request{}, e.enc, sinks[i], gones[i])
			sinks[i].ended.Store(true)
			dones[i] <- r
		}()
		sinks[i].waitEvents(t, 1)
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		shut <- e.hub.Shutdown(ctx)
	}()
	// The first kick comes at once, the second half the window later; the
	// second subscriber's client goes in between.
	var later int
	select {
	case <-sinks[0].interrupted:
		later = 1
	case <-sinks[1].interrupted:
		later = 0
	case <-time.After(15 * time.Second):
		t.Fatal("no kick")
	}
	close(gones[later])
	// Its client left while the hub shuts down: either reason is right,
	// whichever Run saw first.
	if r := <-dones[later]; r != DisconnectClient && r != DisconnectShutdown {
		t.Fatalf("reason %q, want %q or %q", r, DisconnectClient, DisconnectShutdown)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if r := <-dones[1-later]; r != DisconnectShutdown {
		t.Fatalf("kicked: reason %q", r)
	}
	if sinks[later].late.Load() {
		t.Fatal("interrupted after its Run returned")
	}
}
