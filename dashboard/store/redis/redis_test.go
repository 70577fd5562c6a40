package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"livedash/dashboard/store"
	"livedash/dashboard/store/redis/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer collects log lines from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func logTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openTest opens a store on srv under prefix and closes it when the test
// ends. Require is set unless opts says otherwise: a test's Redis is up.
func openTest(t testing.TB, srv *redistest.Server, opts Options) *Store {
	t.Helper()
	if opts.URL == "" {
		opts.URL = srv.URL()
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "t"
	}
	opts.Require = true
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func tick(topic string, i int) store.Batch {
	return store.Batch{Topic: topic, Time: time.UnixMilli(1764255600123 + int64(i)), Samples: []store.Sample{
		{Name: "x_ratio", Labels: map[string]string{"cpu": "total", "i": fmt.Sprint(i)}, Value: float64(i) / 8},
		{Name: "y_bytes", Value: float64(i * i)},
	}}
}

// recorder keeps what a store's hooks saw.
type recorder struct {
	mu      sync.Mutex
	frames  []store.Frame
	commits [][2]uint64 // first, last seq of each hook call
}

func record(s *Store) *recorder {
	r := &recorder{}
	s.OnCommit(func(fs []store.Frame) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.frames = append(r.frames, fs...)
		r.commits = append(r.commits, [2]uint64{fs[0].ID.Seq, fs[len(fs)-1].ID.Seq})
	})
	return r
}

func (r *recorder) snapshot() ([]store.Frame, [][2]uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.frames), slices.Clone(r.commits)
}

// waitHead waits until s has delivered up to seq.
func waitHead(t *testing.T, s *Store, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Head().Seq < seq {
		if time.Now().After(deadline) {
			t.Fatalf("head %v, want seq %d", s.Head(), seq)
		}
		select {
		case <-s.Changed():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two instances on one ring, appending at once: seqs are handed out
// consecutively across both, and each instance's hooks see every frame of
// both — the same frames, in the same order, grouped in the same commits,
// exactly once — with the samples of the batches (its own from the batch,
// the other's decoded from the JSON). What Append returned is what the
// hooks saw, and both read the same ring back.
func TestTwoInstancesOneOrder(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := openTest(t, srv, Options{Node: "a"})
	b := openTest(t, srv, Options{Node: "b"})
	if a.Epoch() != b.Epoch() {
		t.Fatalf("epochs %016x and %016x on one ring", a.Epoch(), b.Epoch())
	}
	ra, rb := record(a), record(b)
	var mu sync.Mutex
	returned := map[uint64]store.Frame{}
	var wg sync.WaitGroup
	for _, s := range []*Store{a, b, a, b} {
		wg.Go(func() {
			for i := range 60 {
				bs := make([]store.Batch, 1+i%4)
				for j := range bs {
					bs[j] = tick(s.Node()+fmt.Sprint(j), i*10+j)
				}
				fs, err := s.Append(bs)
				if err != nil {
					t.Errorf("%s append: %v", s.Node(), err)
					return
				}
				mu.Lock()
				for k, f := range fs {
					if k > 0 && f.ID.Seq != fs[k-1].ID.Seq+1 {
						t.Errorf("one call's frames not consecutive: %v after %v", f.ID, fs[k-1].ID)
					}
					if _, dup := returned[f.ID.Seq]; dup {
						t.Errorf("seq %d handed out twice", f.ID.Seq)
					}
					returned[f.ID.Seq] = f
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	n := uint64(len(returned))
	waitHead(t, a, n)
	waitHead(t, b, n)
	fa, ca := ra.snapshot()
	fb, cb := rb.snapshot()
	if uint64(len(fa)) != n || uint64(len(fb)) != n {
		t.Fatalf("hooks saw %d and %d frames, want %d", len(fa), len(fb), n)
	}
	if !slices.Equal(ca, cb) {
		t.Fatalf("commits differ between the instances:\n%v\n%v", ca, cb)
	}
	for i := range fa {
		x, y := fa[i], fb[i]
		if x.ID.Seq != uint64(i)+1 || x.ID != y.ID {
			t.Fatalf("position %d: a saw %v, b saw %v", i, x.ID, y.ID)
		}
		if x.Topic != y.Topic || x.TS != y.TS || !bytes.Equal(x.JSON, y.JSON) {
			t.Fatalf("frame %v differs between the instances:\n%s\n%s", x.ID, x.JSON, y.JSON)
		}
		if !reflect.DeepEqual(x.Samples, y.Samples) || len(x.Samples) != 2 {
			t.Fatalf("frame %v samples differ:\n%v\n%v", x.ID, x.Samples, y.Samples)
		}
		r := returned[x.ID.Seq]
		if !bytes.Equal(r.JSON, x.JSON) || !reflect.DeepEqual(r.Samples, x.Samples) {
			t.Fatalf("frame %v: Append returned %s, hooks saw %s", x.ID, r.JSON, x.JSON)
		}
	}
	for _, s := range []*Store{a, b} {
		got := s.After(store.ID{Epoch: s.Epoch()}, nil, store.Limits{})
		if len(got.Frames) != int(n) || got.Reset != store.OK {
			t.Fatalf("%s reads back %d frames, reset %q", s.Node(), len(got.Frames), got.Reset)
		}
		names := []string{}
		for _, nd := range s.Nodes() {
			names = append(names, nd.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"a", "b"}) {
			t.Fatalf("%s saw nodes %q", s.Node(), names)
		}
	}
}

// A store opened on a ring that has frames starts at its head, knows the
// newest frame of every topic and the nodes that appended, and resumes any
// cursor another instance handed out.
func TestOpenAdoptsRing(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := openTest(t, srv, Options{Node: "a", MaxFrames: 50})
	for i := range 80 {
		if _, err := a.Append([]store.Batch{tick([]string{"cpu", "memory", "rare"}[min(i%3, 1)], i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Append([]store.Batch{tick("rare", 80)}); err != nil {
		t.Fatal(err)
	}
	b := openTest(t, srv, Options{Node: "b", MaxFrames: 50})
	if b.Epoch() != a.Epoch() || b.Head() != a.Head() || b.Oldest() != a.Oldest() || b.Len() != 50 {
		t.Fatalf("b: epoch %016x head %v oldest %v len %d; a: %016x %v %v", b.Epoch(), b.Head(), b.Oldest(), b.Len(), a.Epoch(), a.Head(), a.Oldest())
	}
	want := slices.Sorted(slices.Values(a.Topics()))
	if got := slices.Sorted(slices.Values(b.Topics())); !slices.Equal(got, want) {
		t.Fatalf("b topics %q, a %q", got, want)
	}
	for _, topic := range want {
		x, _ := a.Latest(topic)
		y, _ := b.Latest(topic)
		if x.ID != y.ID || !bytes.Equal(x.JSON, y.JSON) || y.Samples != nil {
			t.Fatalf("Latest(%s): a %v, b %v", topic, x.ID, y.ID)
		}
	}
	if ns := b.Nodes(); len(ns) != 1 || ns[0].Name != "a" || ns[0].Seq != 81 {
		t.Fatalf("b knows nodes %+v", ns)
	}
	cur := store.ID{Epoch: a.Epoch(), Seq: 70}
	ra, rb := a.After(cur, nil, store.Limits{}), b.After(cur, nil, store.Limits{})
	if len(ra.Frames) != 11 || len(rb.Frames) != 11 || ra.Next != rb.Next {
		t.Fatalf("cursor %v: a %d frames next %v, b %d next %v", cur, len(ra.Frames), ra.Next, len(rb.Frames), rb.Next)
	}
	for i := range ra.Frames {
		if !bytes.Equal(ra.Frames[i].JSON, rb.Frames[i].JSON) {
			t.Fatalf("frame %v differs", ra.Frames[i].ID)
		}
	}
}

// Until Start (or the first Append) the tail delivers nothing: a part that
// reads the head and then registers a hook misses no commit in between,
// however busy the other instances are. After Start the hook sees every
// commit from the head as of Open.
func TestStartDelivers(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := openTest(t, srv, Options{Node: "a"})
	for i := range 3 {
		if _, err := a.Append([]store.Batch{tick("a", i)}); err != nil {
			t.Fatal(err)
		}
	}
	b := openTest(t, srv, Options{Node: "b"})
	for i := range 4 {
		if _, err := a.Append([]store.Batch{tick("a", 10+i)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if b.Head().Seq != 3 {
		t.Fatalf("b delivered up to %v before Start", b.Head())
	}
	if r := b.After(store.ID{Epoch: b.Epoch(), Seq: 1}, nil, store.Limits{}); len(r.Frames) != 2 || r.Next.Seq != 3 {
		t.Fatalf("b reads beyond its head before Start: %d frames, next %v", len(r.Frames), r.Next)
	}
	rec := record(b)
	b.Start()
	b.Start()
	waitHead(t, b, 7)
	got, commits := rec.snapshot()
	if len(got) != 4 || got[0].ID.Seq != 4 || len(commits) != 4 {
		t.Fatalf("hook saw %d frames from %v in %d commits", len(got), got[0].ID, len(commits))
	}
}

// Redis unreachable at start with Require: Open fails at once, naming the
// URL with its password redacted.
func TestUnreachableAtStartRequire(t *testing.T) {
	addr := redistest.UnusedAddr(t)
	url := "redis://:s3cret-pw@" + addr + "/0"
	start := time.Now()
	_, err := Open(context.Background(), Options{URL: url, Require: true, DialTimeout: time.Second})
	if err == nil {
		t.Fatal("Open succeeded with nothing listening")
	}
	msg := err.Error()
	if !strings.Contains(msg, addr) || strings.Contains(msg, "s3cret-pw") || !strings.Contains(msg, "require") {
		t.Fatalf("error %q: want the address, no password, and a word on require", msg)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Open took %v to fail", d)
	}
}

// Redis unreachable at start without Require: Open retries with growing
// waits, logging the URL (password redacted) and the error each time, and
// returns once Redis answers; or gives up when its context ends.
func TestUnreachableAtStartRetries(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Password: "s3cret-pw"})
	srv.Kill()
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	done := make(chan error, 1)
	var s *Store
	go func() {
		var err error
		s, err = Open(context.Background(), Options{URL: srv.URL(), KeyPrefix: "retry", Logger: logTo(&logs), Registerer: reg})
		done <- err
	}()
	waitFor(t, "two failed attempts logged", 10*time.Second, func() bool {
		return strings.Count(logs.String(), "Redis unreachable; retrying") >= 2
	})
	// Meanwhile the metrics can be gathered, and show an empty ring.
	for _, name := range []string{"livedash_store_frames", "livedash_store_head_sequence", "livedash_store_redis_tail_lag_frames"} {
		if v := testutil.ToFloat64(mustCollector(t, reg, name)); v != 0 {
			t.Fatalf("%s is %v while Open retries", name, v)
		}
	}
	srv.Restart()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("open after Redis came back: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("Open did not return after Redis came back\n%s", logs.String())
	}
	defer s.Close()
	out := logs.String()
	if strings.Contains(out, "s3cret-pw") || !strings.Contains(out, srv.Addr) || !strings.Contains(out, "xxxxx") {
		t.Fatalf("logs must name the URL with the password redacted:\n%s", out)
	}
	if n := testutil.ToFloat64(mustCollector(t, reg, "livedash_store_redis_connect_failures_total")); n < 2 {
		t.Fatalf("connect failures counted %v", n)
	}
	if _, err := s.Append([]store.Batch{tick("a", 1)}); err != nil || s.Err() != nil {
		t.Fatalf("append after connecting: %v, Err %v", err, s.Err())
	}

	// Giving up: the context ends the retries.
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if _, err := Open(ctx, Options{URL: srv.URL(), KeyPrefix: "retry"}); err == nil || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("Open with a context that ends: %v", err)
	}
}

// Redis lost while running, then back with its data: appends fail at once
// and are counted, nothing is buffered, Err reports it; once Redis is back
// the tail reconnects and resumes from the last ID it read, appends work
// again, the epoch is kept and the hooks see consecutive seqs across the
// outage.
func TestRedisLostWhileRunning(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Persist: true})
	reg := prometheus.NewRegistry()
	var logs syncBuffer
	s := openTest(t, srv, Options{Node: "a", Registerer: reg, Logger: logTo(&logs), DialTimeout: 500 * time.Millisecond})
	rec := record(s)
	for i := range 5 {
		if _, err := s.Append([]store.Batch{tick("a", i)}); err != nil {
			t.Fatal(err)
		}
	}
	epoch := s.Epoch()
	srv.Kill()
	goroutines := runtime.NumGoroutine()
	for i := range 50 {
		start := time.Now()
		fs, err := s.Append([]store.Batch{tick("a", 100+i)})
		if err == nil || len(fs) != 0 {
			t.Fatalf("append with Redis down: %d frames, %v", len(fs), err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("append %d took %v to fail", i, d)
		}
		if i == 0 && (!strings.Contains(err.Error(), srv.Addr) || errors.Is(err, ErrEpochLost)) {
			t.Fatalf("append error %q should name the Redis address", err)
		}
	}
	if s.Err() == nil {
		t.Fatal("Err() nil with Redis down")
	}
	if n := testutil.ToFloat64(mustCollector(t, reg, "livedash_store_append_errors_total")); n != 50 {
		t.Fatalf("append errors counted %v, want 50", n)
	}
	s.pmu.Lock()
	pending := len(s.pending)
	s.pmu.Unlock()
	if pending != 0 {
		t.Fatalf("%d failed appends still held", pending)
	}
	if g := runtime.NumGoroutine(); g > goroutines+5 {
		t.Fatalf("goroutines grew from %d to %d while Redis was down", goroutines, g)
	}

	srv.Restart()
	var fs []store.Frame
	waitFor(t, "an append to succeed after Redis came back", 15*time.Second, func() bool {
		var err error
		fs, err = s.Append([]store.Batch{tick("a", 200)})
		return err == nil
	})
	if fs[0].ID != (store.ID{Epoch: epoch, Seq: 6}) {
		t.Fatalf("first frame after the outage %v, want seq 6 of the same epoch", fs[0].ID)
	}
	waitFor(t, "Err() to clear", 10*time.Second, func() bool { return s.Err() == nil })
	if n := testutil.ToFloat64(mustCollector(t, reg, "livedash_store_redis_reconnects_total")); n < 1 {
		t.Fatalf("reconnects counted %v", n)
	}
	got, _ := rec.snapshot()
	for i, f := range got {
		if f.ID.Seq != uint64(i)+1 {
			t.Fatalf("hooks saw %v at %d", f.ID, i)
		}
	}
	if len(got) != 6 {
		t.Fatalf("hooks saw %d frames, want 6", len(got))
	}
	if !strings.Contains(logs.String(), "Redis is back") {
		t.Fatalf("no log line about Redis coming back:\n%s", logs.String())
	}
}

// Redis restarted without its data: the epoch is gone. The appending
// instance notices on its next append, an idle one through its tail; both
// become Lost (Err, Lost's channel, appends and reads fail with
// ErrEpochLost) and never hand out or serve IDs of the old epoch. A store
// opened afterwards gets a new epoch, and a cursor of the old one is
// unknown_epoch there.
func TestRedisRestartedWithoutData(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := openTest(t, srv, Options{Node: "a"})
	b := openTest(t, srv, Options{Node: "b"})
	b.Start()
	for i := range 5 {
		if _, err := a.Append([]store.Batch{tick("a", i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitHead(t, b, 5)
	cursor := a.Head()
	srv.Restart()

	// a: the next append that reaches Redis finds no epoch.
	var err error
	waitFor(t, "an append to reach Redis again", 10*time.Second, func() bool {
		_, err = a.Append([]store.Batch{tick("a", 9)})
		return errors.Is(err, ErrEpochLost)
	})
	// b: its tail notices on reconnecting.
	for _, s := range []*Store{a, b} {
		select {
		case <-s.Lost():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s not Lost", s.Node())
		}
		if !errors.Is(s.Err(), ErrEpochLost) {
			t.Fatalf("%s Err() = %v", s.Node(), s.Err())
		}
		if _, err := s.Append([]store.Batch{tick("a", 10)}); !errors.Is(err, ErrEpochLost) {
			t.Fatalf("%s append when Lost: %v", s.Node(), err)
		}
		if r := s.After(store.ID{Epoch: s.Epoch(), Seq: 2}, nil, store.Limits{}); !errors.Is(r.Err, ErrEpochLost) || len(r.Frames) != 0 {
			t.Fatalf("%s read when Lost: %d frames, %v", s.Node(), len(r.Frames), r.Err)
		}
	}
	c := openTest(t, srv, Options{Node: "c"})
	if c.Epoch() == cursor.Epoch || c.Head().Seq != 0 {
		t.Fatalf("after Redis lost its data: epoch %016x head %v; old epoch %016x", c.Epoch(), c.Head(), cursor.Epoch)
	}
	if r := c.After(cursor, nil, store.Limits{}); r.Reset != store.UnknownEpoch {
		t.Fatalf("old cursor on the new epoch: reset %q", r.Reset)
	}
	fs, err := c.Append([]store.Batch{tick("c", 1)})
	if err != nil || fs[0].ID != (store.ID{Epoch: c.Epoch(), Seq: 1}) {
		t.Fatalf("first frame of the new epoch: %v %v", fs, err)
	}
}

// Redis back behind frames an instance delivered (restored from an older
// snapshot): handing those seqs out again would give old IDs to new frames.
// The instance that notices retires the epoch in Redis; every instance
// becomes Lost and a new store starts a new epoch.
func TestRedisBehindRetiresEpoch(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := openTest(t, srv, Options{Node: "a", KeyPrefix: "behind"})
	b := openTest(t, srv, Options{Node: "b", KeyPrefix: "behind"})
	b.Start()
	for i := range 10 {
		if _, err := a.Append([]store.Batch{tick("a", i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitHead(t, b, 10)
	old := a.Epoch()
	// What a restore of an older snapshot looks like: the head went back.
	if out, err := srv.Do("HSET", "{behind}:meta", "head", "6"); err != nil {
		t.Fatalf("HSET: %v %s", err, out)
	}
	if _, err := a.Append([]store.Batch{tick("a", 11)}); !errors.Is(err, ErrEpochLost) {
		t.Fatalf("append onto a Redis behind this instance: %v", err)
	}
	for _, s := range []*Store{a, b} {
		select {
		case <-s.Lost():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s not Lost", s.Node())
		}
	}
	now, err := srv.Do("HGET", "{behind}:meta", "epoch")
	if err != nil || now == fmt.Sprintf("%016x", old) || len(now) != 16 {
		t.Fatalf("epoch in Redis %q (%v), old %016x", now, err, old)
	}
	c := openTest(t, srv, Options{Node: "c", KeyPrefix: "behind"})
	if c.Head().Seq != 0 || fmt.Sprintf("%016x", c.Epoch()) != now {
		t.Fatalf("new store: epoch %016x head %v, Redis has %s", c.Epoch(), c.Head(), now)
	}
}

// A cursor another instance's appends trimmed away is expired, with the
// bounds to resume from; the cursor at oldest-1 reads on.
func TestTrimmedPastCursor(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := openTest(t, srv, Options{Node: "a", MaxFrames: 10})
	b := openTest(t, srv, Options{Node: "b", MaxFrames: 10})
	for i := range 5 {
		if _, err := a.Append([]store.Batch{tick("a", i)}); err != nil {
			t.Fatal(err)
		}
	}
	cursor := store.ID{Epoch: a.Epoch(), Seq: 3}
	if r := a.After(cursor, nil, store.Limits{}); r.Reset != store.OK || len(r.Frames) != 2 {
		t.Fatalf("before the trim: %q, %d frames", r.Reset, len(r.Frames))
	}
	for i := range 20 {
		if _, err := b.Append([]store.Batch{tick("b", i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitHead(t, a, 25)
	r := a.After(cursor, nil, store.Limits{})
	if r.Reset != store.Expired || len(r.Frames) != 0 || r.Oldest.Seq != 16 || r.Head.Seq != 25 {
		t.Fatalf("after the trim: reset %q, %d frames, oldest %v head %v", r.Reset, len(r.Frames), r.Oldest, r.Head)
	}
	if r := a.After(store.ID{Epoch: a.Epoch(), Seq: 15}, nil, store.Limits{}); r.Reset != store.OK || len(r.Frames) != 10 {
		t.Fatalf("from oldest-1: %q, %d frames", r.Reset, len(r.Frames))
	}
}

// A tail held back while the ring moved on by more than the retention plus
// the slack finds frames it never read trimmed away: it cannot give its
// hooks consecutive seqs, so the store becomes Lost rather than skip them.
func TestTailGapIsLost(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	hold := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	defer release()
	held := Options{Node: "held", MaxFrames: 5, TailSlack: 2, beforeRead: func() {
		<-hold
	}}
	// Open would wait for nothing from the tail; the hold blocks the tail's
	// first read.
	a := openTest(t, srv, held)
	a.Start()
	b := openTest(t, srv, Options{Node: "b", MaxFrames: 5, TailSlack: 2})
	for i := range 20 {
		if _, err := b.Append([]store.Batch{tick("b", i)}); err != nil {
			t.Fatal(err)
		}
	}
	release()
	select {
	case <-a.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("a tail that missed trimmed frames did not make the store Lost")
	}
	if err := a.Err(); !errors.Is(err, ErrEpochLost) || !strings.Contains(err.Error(), "fell behind") {
		t.Fatalf("Err() = %v", err)
	}
	if a.Head().Seq != 0 {
		t.Fatalf("a delivered up to %v across a gap", a.Head())
	}
}

// Close ends the tail's blocking read at once, whatever its block time.
func TestCloseIsPrompt(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s, err := Open(context.Background(), Options{URL: srv.URL(), TailBlock: 30 * time.Second, Require: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	time.Sleep(100 * time.Millisecond) // the tail is blocked in XREAD
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
}

// The store exports the common store series and its Redis ones, in base
// units, on the registry it is given, and unregisters them on Close.
func TestMetrics(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	reg := prometheus.NewRegistry()
	s := openTest(t, srv, Options{Registerer: reg})
	if _, err := s.Append([]store.Batch{tick("a", 1), tick("b", 2)}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"livedash_store_redis_roundtrip_duration_seconds", "livedash_store_redis_tail_lag_seconds",
		"livedash_store_redis_tail_lag_frames", "livedash_store_redis_append_errors_total",
		"livedash_store_redis_reconnects_total", "livedash_store_redis_delivered_frames_total",
		"livedash_store_frames", "livedash_store_append_duration_seconds", "livedash_store_append_errors_total",
		"livedash_store_appended_frames_total", "livedash_store_head_sequence",
	} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n == 0 {
			t.Errorf("%s: %d series, %v", name, n, err)
		}
	}
	if got := testutil.ToFloat64(mustCollector(t, reg, "livedash_store_redis_delivered_frames_total")); got != 2 {
		t.Errorf("delivered %v frames, want 2", got)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// mustCollector finds the metric family name in reg and returns it as a
// collector of its summed value, for testutil.ToFloat64.
func mustCollector(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var v float64
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				v += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v += m.GetGauge().GetValue()
			}
		}
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: "x"}, func() float64 { return v })
	}
	t.Fatalf("no metric %s", name)
	return nil
}

// URLs: redis:// and rediss:// only, no query parameters, and the password
// never appears in an error.
func TestClientOptions(t *testing.T) {
	for _, bad := range []string{"http://h:1", "redis://", "redis://:pw@h:1/0?dial_timeout=1s", "localhost:6379", "redis://h:1/x"} {
		_, err := clientOptions(Options{URL: bad})
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), ":pw@") {
			t.Errorf("%q: error shows the password: %v", bad, err)
		}
	}
	ro, err := clientOptions(Options{URL: "rediss://u:pw@example.com:6380/3", PoolSize: 7, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if ro.TLSConfig == nil || ro.Addr != "example.com:6380" || ro.DB != 3 || ro.Username != "u" || ro.Password != "pw" || ro.PoolSize != 7 || ro.DialTimeout != time.Second {
		t.Fatalf("options %+v", ro)
	}
	if got := RedactURL("redis://u:pw@h:1/0"); got != "redis://u:xxxxx@h:1/0" {
		t.Fatalf("RedactURL = %q", got)
	}
}

// A cursor another instance handed out can be ahead of this store's tail:
// a read after it waits for the tail instead of calling it the future, and
// returns what follows it. A cursor beyond the ring's head is the future at
// once.
func TestReadCatchesUp(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	hold := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	defer release()
	held := make(chan struct{}, 16)
	b := openTest(t, srv, Options{Node: "b", beforeRead: func() {
		select {
		case held <- struct{}{}:
		default:
		}
		<-hold
	}})
	b.Start()
	<-held
	a := openTest(t, srv, Options{Node: "a"})
	for i := range 4 {
		if _, err := a.Append([]store.Batch{tick("a", i)}); err != nil {
			t.Fatal(err)
		}
	}
	cursor := store.ID{Epoch: a.Epoch(), Seq: 2} // handed out by a; b has nothing yet
	start := time.Now()
	if r := b.After(store.ID{Epoch: a.Epoch(), Seq: 9}, nil, store.Limits{}); r.Reset != store.Future {
		t.Fatalf("beyond the ring's head: reset %q", r.Reset)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a cursor from the future took %v to answer", d)
	}
	got := make(chan store.Result, 1)
	go func() { got <- b.After(cursor, nil, store.Limits{}) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case r := <-got:
		t.Fatalf("read answered before the tail caught up: %+v", r)
	default:
	}
	release()
	select {
	case r := <-got:
		// The tail delivers commit by commit: the read may come back as
		// soon as the cursor's own commit is delivered.
		if r.Reset != store.OK || r.Next.Seq != 2+uint64(len(r.Frames)) || (len(r.Frames) > 0 && r.Frames[0].ID.Seq != 3) {
			t.Fatalf("after catching up: reset %q, %d frames, next %v", r.Reset, len(r.Frames), r.Next)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the read did not return once the tail caught up")
	}
	if !b.CatchUp(4) || b.CatchUp(5) {
		t.Fatal("CatchUp: 4 is in the ring, 5 is beyond it")
	}
	if r := b.After(cursor, nil, store.Limits{}); len(r.Frames) != 2 || r.Next.Seq != 4 {
		t.Fatalf("once caught up: %d frames, next %v", len(r.Frames), r.Next)
	}
}

// An Append whose frames the tail does not deliver within DeliverTimeout
// returns them anyway (they are committed), holds nothing for them, and the
// hooks still get them once the tail gets there — exactly once, in order.
func TestDeliverTimeout(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	hold := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	defer release()
	reg := prometheus.NewRegistry()
	s := openTest(t, srv, Options{Registerer: reg, DeliverTimeout: 200 * time.Millisecond, beforeRead: func() { <-hold }})
	rec := record(s)
	start := time.Now()
	bs := []store.Batch{tick("a", 1), tick("b", 2)}
	fs, err := s.Append(bs)
	if err != nil || len(fs) != 2 {
		t.Fatalf("append: %d frames, %v", len(fs), err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Fatalf("append returned after %v", d)
	}
	if fs[0].ID != (store.ID{Epoch: s.Epoch(), Seq: 1}) || fs[1].ID.Seq != 2 || !reflect.DeepEqual(fs[1].Samples, bs[1].Samples) {
		t.Fatalf("frames %v %v", fs[0].ID, fs[1].ID)
	}
	s.pmu.Lock()
	n := len(s.pending)
	s.pmu.Unlock()
	if n != 0 {
		t.Fatalf("%d commits held after the Append returned", n)
	}
	if got := testutil.ToFloat64(mustCollector(t, reg, "livedash_store_redis_deliver_timeouts_total")); got != 1 {
		t.Fatalf("deliver timeouts %v", got)
	}
	release()
	waitHead(t, s, 2)
	got, commits := rec.snapshot()
	if len(got) != 2 || len(commits) != 1 || !bytes.Equal(got[0].JSON, fs[0].JSON) || !reflect.DeepEqual(got[1].Samples, bs[1].Samples) {
		t.Fatalf("hooks saw %d frames in %d commits", len(got), len(commits))
	}
}
