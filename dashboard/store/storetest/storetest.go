// Package storetest is the contract suite every store.Store implementation
// must pass unchanged. Each subtest checks one clause of the contract written
// on store.Store (and on Result and Limits); its comment names the clause.
//
// An implementation's test calls Run with an Opener that makes a fresh,
// empty store for every subtest:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, cfg storetest.Config) store.Store {
//			s := open(...) // fresh and empty, configured from cfg
//			t.Cleanup(func() { _ = s.Close() })
//			return s
//		})
//	}
//
// The suite closes a store itself only in the Close subtests, so Close must
// be safe to call twice (the contract says a second Close returns nil).
package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"livedash/dashboard/store"
)

// Config is what a subtest asks of a new store. Zero fields mean the
// implementation's defaults, whose retention must hold every frame a
// subtest appends (a few thousand at most) and drop none by age.
type Config struct {
	MaxFrames int              // retention by count
	MaxAge    time.Duration    // retention by age
	Now       func() time.Time // the store's clock: ts of batches with a zero Time, and age; nil: time.Now
}

// Opener returns a fresh, empty store (new epoch, Head seq 0) configured
// from cfg, and registers its own cleanup (t.Cleanup) that closes it.
type Opener func(t *testing.T, cfg Config) store.Store

// Run runs the contract suite: one subtest per clause.
func Run(t *testing.T, open Opener) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		// IDs
		{"EmptyStore", testEmptyStore},
		{"NewStoreNewEpoch", testNewStoreNewEpoch},
		{"ConsecutiveSeqs", testConsecutiveSeqs},
		{"ConcurrentAppends", testConcurrentAppends},
		{"FrameJSON", testFrameJSON},
		{"ZeroTimeIsStoreClock", testZeroTimeIsStoreClock},
		// Durability first
		{"CommitHooksSeeDurableFrames", testCommitHooksSeeDurableFrames},
		{"HookOrderAndChanged", testHookOrderAndChanged},
		{"ErrTopicWritesNothing", testErrTopicWritesNothing},
		{"MaxTopicLen", testMaxTopicLen},
		// Reads after a cursor
		{"ReadAfterEveryCursor", testReadAfterEveryCursor},
		{"AfterCopies", testAfterCopies},
		{"PagingFrames", testPagingFrames},
		{"LimitBytes", testLimitBytes},
		{"LimitScan", testLimitScan},
		{"LimitFramesWithFilter", testLimitFramesWithFilter},
		{"LimitUntil", testLimitUntil},
		{"TopicFilter", testTopicFilter},
		{"AfterViewEqualsAfter", testAfterViewEqualsAfter},
		{"CursorEdges", testCursorEdges},
		// Retention
		{"RetentionByCount", testRetentionByCount},
		{"ExpiredNeverPartial", testExpiredNeverPartial},
		{"ExpiredUnderConcurrentTrim", testExpiredUnderConcurrentTrim},
		{"RetentionByAge", testRetentionByAge},
		{"AgeEmptiesRing", testAgeEmptiesRing},
		{"ClockBackwards", testClockBackwards},
		// Index reads
		{"ScanView", testScanView},
		{"SeekTime", testSeekTime},
		{"LatestAndTopics", testLatestAndTopics},
		{"LatestFollowsRetention", testLatestFollowsRetention},
		// Close
		{"AppendAfterClose", testAppendAfterClose},
		{"ErrAfterClose", testErrAfterClose},
		{"SecondClose", testSecondClose},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// base is the time of the suite's batches: batch(topic, seq) is stamped
// base + seq seconds, so ts grows with seq and no two frames share a ts.
var base = time.UnixMilli(1764255600123)

// batch is a typical collector batch for the frame that will get seq: a
// sample with labels and one without, values derived from seq so every
// frame's JSON differs (and differs in length now and then).
func batch(topic string, seq uint64) store.Batch {
	return store.Batch{Topic: topic, Time: base.Add(time.Duration(seq) * time.Second), Samples: []store.Sample{
		{Name: "x_ratio", Labels: map[string]string{"cpu": "total", "n": strconv.FormatUint(seq, 10)}, Value: float64(seq) / 8},
		{Name: "y_total", Value: float64(seq * seq)},
	}}
}

// wire is the frame's wire JSON as the contract defines it.
func wire(id store.ID, topic string, ts int64, samples []store.Sample) []byte {
	var keys []string
	js, _ := store.AppendFrameJSON(nil, &keys, id, topic, ts, samples)
	return js
}

// appendOK appends bs in one call on a store nobody else appends to and
// checks the returned frames: seqs head+1 … head+n in batch order, the
// store's epoch, the batch's topic and time, and the wire JSON of the batch.
func appendOK(t *testing.T, s store.Store, bs ...store.Batch) []store.Frame {
	t.Helper()
	head := s.Head()
	fs, err := s.Append(bs)
	if err != nil {
		t.Fatalf("append %d batches after %v: %v", len(bs), head, err)
	}
	if len(fs) != len(bs) {
		t.Fatalf("append %d batches returned %d frames", len(bs), len(fs))
	}
	for i, f := range fs {
		want := store.ID{Epoch: s.Epoch(), Seq: head.Seq + uint64(i) + 1}
		if f.ID != want {
			t.Fatalf("batch %d of %d after %v got ID %v, want %v", i, len(bs), head, f.ID, want)
		}
		if f.Topic != bs[i].Topic {
			t.Fatalf("frame %v: topic %q, want %q", f.ID, f.Topic, bs[i].Topic)
		}
		if !bs[i].Time.IsZero() && f.TS != bs[i].Time.UnixMilli() {
			t.Fatalf("frame %v: ts %d, want %d", f.ID, f.TS, bs[i].Time.UnixMilli())
		}
		if w := wire(f.ID, bs[i].Topic, f.TS, bs[i].Samples); !bytes.Equal(f.JSON, w) {
			t.Fatalf("frame %v JSON:\n got %s\nwant %s", f.ID, f.JSON, w)
		}
	}
	if s.Head() != fs[len(fs)-1].ID {
		t.Fatalf("head %v after appending up to %v", s.Head(), fs[len(fs)-1].ID)
	}
	return fs
}

// fill appends n frames one call each, topics in turn, and returns them.
// On a fresh store the frame with seq k is fill's result [k-1].
func fill(t *testing.T, s store.Store, topics []string, n int) []store.Frame {
	t.Helper()
	out := make([]store.Frame, 0, n)
	for i := range n {
		out = append(out, appendOK(t, s, batch(topics[i%len(topics)], s.Head().Seq+1))...)
	}
	return out
}

// id is seq in s's epoch.
func id(s store.Store, seq uint64) store.ID { return store.ID{Epoch: s.Epoch(), Seq: seq} }

// frameDiff says how got differs from want as a frame read back ("" if it
// does not): same ID, topic, ts and JSON bytes, and no Samples (they are set
// only on frames handed to commit hooks).
func frameDiff(got, want store.Frame) string {
	switch {
	case got.ID != want.ID:
		return fmt.Sprintf("ID %v, want %v", got.ID, want.ID)
	case got.Topic != want.Topic:
		return fmt.Sprintf("frame %v: topic %q, want %q", got.ID, got.Topic, want.Topic)
	case got.TS != want.TS:
		return fmt.Sprintf("frame %v: ts %d, want %d", got.ID, got.TS, want.TS)
	case !bytes.Equal(got.JSON, want.JSON):
		return fmt.Sprintf("frame %v: JSON\n got %s\nwant %s", got.ID, got.JSON, want.JSON)
	case got.Samples != nil:
		return fmt.Sprintf("frame %v read back with Samples", got.ID)
	}
	return ""
}

func sameFrames(t *testing.T, what string, got, want []store.Frame) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d frames (%v), want %d (%v)", what, len(got), seqs(got), len(want), seqs(want))
	}
	for i := range want {
		if d := frameDiff(got[i], want[i]); d != "" {
			t.Fatalf("%s: frame %d: %s", what, i, d)
		}
	}
}

func seqs(fs []store.Frame) []uint64 {
	out := make([]uint64, len(fs))
	for i, f := range fs {
		out[i] = f.ID.Seq
	}
	if len(out) > 12 {
		return append(out[:5:5], append([]uint64{0}, out[len(out)-5:]...)...)
	}
	return out
}

// checkRead checks an OK read after cursor cur of a store whose frame with
// seq k is all[k-1], whose oldest retained seq is oldest, and that read no
// further than end (the head, or Limits.Until): no error and no reset; Next
// in the cursor's epoch, not behind the cursor and not past end; Next at end
// unless a limit stopped the read (More), and past the cursor if one did (a
// page always makes progress); and the frames exactly the retained frames in
// (cur, Next] that match, in seq order: every frame up to Next was looked at,
// so resuming after Next misses nothing and repeats nothing.
func checkRead(t *testing.T, what string, r store.Result, cur store.ID, all []store.Frame, oldest, end uint64, match func(string) bool) {
	t.Helper()
	if r.Err != nil || r.Reset != store.OK {
		t.Fatalf("%s: err %v reset %q", what, r.Err, r.Reset)
	}
	if r.Next.Epoch != cur.Epoch || r.Next.Seq < cur.Seq || r.Next.Seq > max(end, cur.Seq) {
		t.Fatalf("%s: next %v after cursor %v, end %d", what, r.Next, cur, end)
	}
	if !r.More && r.Next.Seq != max(end, cur.Seq) {
		t.Fatalf("%s: next %v without More, want the end %d", what, r.Next, end)
	}
	if r.More && r.Next.Seq == cur.Seq {
		t.Fatalf("%s: More but next %v did not move past the cursor", what, r.Next)
	}
	var want []store.Frame
	for seq := max(cur.Seq+1, oldest); seq <= r.Next.Seq; seq++ {
		if f := all[seq-1]; match == nil || match(f.Topic) {
			want = append(want, f)
		}
	}
	sameFrames(t, what, r.Frames, want)
}

// view runs AfterView and returns its Result with Frames set to copies of
// what fn saw (Samples nil, as for frames read back), and whether fn was
// called. AfterView's own Result must hold no frames: it is After's with
// Frames nil.
func view(t *testing.T, s store.Store, cur store.ID, match func(string) bool, lim store.Limits) (store.Result, bool) {
	t.Helper()
	var bmatch func([]byte) bool
	if match != nil {
		bmatch = func(topic []byte) bool { return match(string(topic)) }
	}
	var fs []store.Frame
	called := false
	r := s.AfterView(cur, bmatch, lim, func(seq uint64, ts int64, topic, js []byte) {
		called = true
		fs = append(fs, store.Frame{ID: id(s, seq), Topic: string(topic), TS: ts, JSON: bytes.Clone(js)})
	})
	if len(r.Frames) != 0 {
		t.Fatalf("AfterView after %v returned %d Frames in its Result", cur, len(r.Frames))
	}
	r.Frames = fs
	return r, called
}

// resultDiff compares everything but Frames and Err of two Results.
func resultDiff(got, want store.Result) string {
	if got.Next != want.Next || got.More != want.More || got.Head != want.Head ||
		got.Oldest != want.Oldest || got.Reset != want.Reset {
		return fmt.Sprintf("next %v more %v head %v oldest %v reset %q; want next %v more %v head %v oldest %v reset %q",
			got.Next, got.More, got.Head, got.Oldest, got.Reset, want.Next, want.More, want.Head, want.Oldest, want.Reset)
	}
	return ""
}

// clock is a settable clock for Config.Now, safe to read from any goroutine.
type clock struct{ ms atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ms.Store(t.UnixMilli())
	return c
}

func (c *clock) Now() time.Time      { return time.UnixMilli(c.ms.Load()) }
func (c *clock) Add(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// batch is a batch with a zero Time: the store stamps it with its clock.
func (c *clock) batch(topic string) store.Batch {
	return store.Batch{Topic: topic, Samples: []store.Sample{{Name: "x", Value: float64(c.ms.Load() % 1000)}}}
}

// closedWithin says whether ch is closed, waiting up to d for it.
func closedWithin(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func sortedTopics(s store.Store) []string {
	ts := s.Topics()
	slices.Sort(ts)
	return ts
}
