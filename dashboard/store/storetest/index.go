package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"

	"livedash/dashboard/store"
)

// Contract (ScanView): fn sees every retained frame with seq > after, oldest
// first, with its seq, ts, topic and JSON, until fn returns false or max
// (> 0) frames were visited; ScanView returns the last seq visited.
func testScanView(t *testing.T, open Opener) {
	s := open(t, Config{MaxFrames: 50})
	all := fill(t, s, three, 80) // retained: 31 … 80
	for _, tc := range []struct {
		after     uint64
		max, stop int // stop: fn returns false on the stop-th frame (0: never)
		from, to  uint64
	}{
		{40, 0, 0, 41, 80},
		{40, 5, 0, 41, 45},
		{40, 0, 3, 41, 43},
		{40, 5, 5, 41, 45},
		{78, 5, 0, 79, 80},
		{0, 0, 0, 31, 80}, // below the oldest: every retained frame
		{30, 1, 0, 31, 31},
	} {
		what := fmt.Sprintf("ScanView(%d, %d) stopping at %d", tc.after, tc.max, tc.stop)
		var got []store.Frame
		last, err := s.ScanView(tc.after, tc.max, func(seq uint64, ts int64, topic, js []byte) bool {
			got = append(got, store.Frame{ID: id(s, seq), Topic: string(topic), TS: ts, JSON: bytes.Clone(js)})
			return tc.stop == 0 || len(got) < tc.stop
		})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		sameFrames(t, what, got, all[tc.from-1:tc.to])
		if last != tc.to {
			t.Fatalf("%s: last %d, want %d", what, last, tc.to)
		}
	}
	_, err := s.ScanView(80, 0, func(seq uint64, _ int64, _, _ []byte) bool {
		t.Fatalf("ScanView after the head visited %d", seq)
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Contract (SeekTime): the seq of the first retained frame whose ts ≥ ms;
// the oldest retained frame for any time before it (trimmed frames are not
// answers); Head+1 when every frame is older.
func testSeekTime(t *testing.T, open Opener) {
	s := open(t, Config{MaxFrames: 50})
	all := fill(t, s, three, 80) // ts one second apart; retained: 31 … 80
	for _, f := range all[30:] {
		if got := s.SeekTime(f.TS); got != f.ID.Seq {
			t.Fatalf("SeekTime(ts of %v) = %d", f.ID, got)
		}
		if got := s.SeekTime(f.TS - 1); got != f.ID.Seq {
			t.Fatalf("SeekTime(ts of %v - 1ms) = %d", f.ID, got)
		}
	}
	for _, ms := range []int64{math.MinInt64, 0, all[0].TS, all[29].TS, all[30].TS - 1} {
		if got := s.SeekTime(ms); got != 31 {
			t.Fatalf("SeekTime(%d), before the oldest = %d, want 31", ms, got)
		}
	}
	for _, ms := range []int64{all[79].TS + 1, math.MaxInt64} {
		if got := s.SeekTime(ms); got != 81 {
			t.Fatalf("SeekTime(%d), after the newest = %d, want Head+1 = 81", ms, got)
		}
	}
}

// Contract (Latest, Topics): Latest returns the newest frame of a topic —
// across calls and within one call's batches — as read back (same ID, ts,
// JSON; no Samples); Topics lists every topic that has one, and a topic
// never appended has none.
func testLatestAndTopics(t *testing.T, open Opener) {
	s := open(t, Config{})
	all := fill(t, s, three, 10)
	newest := map[string]store.Frame{}
	for _, f := range all {
		newest[f.Topic] = f
	}
	check := func(what string) {
		t.Helper()
		for topic, want := range newest {
			got, ok := s.Latest(topic)
			if !ok {
				t.Fatalf("%s: no latest frame of %q", what, topic)
			}
			if d := frameDiff(got, want); d != "" {
				t.Fatalf("%s: Latest(%q): %s", what, topic, d)
			}
		}
		want := make([]string, 0, len(newest))
		for topic := range newest {
			want = append(want, topic)
		}
		slices.Sort(want)
		if got := sortedTopics(s); !slices.Equal(got, want) {
			t.Fatalf("%s: topics %q, want %q", what, got, want)
		}
		if f, ok := s.Latest("never"); ok {
			t.Fatalf("%s: Latest of a topic never appended: %v", what, f.ID)
		}
	}
	check("after single appends")
	fs := appendOK(t, s, batch("disk", 11), batch("cpu", 12), batch("cpu", 13), batch("disk", 14))
	for _, f := range fs {
		f.Samples = nil
		newest[f.Topic] = f
	}
	check("after one call with several frames of a topic")
}

// Contract (Latest, Topics: the newest retained frame): once retention has
// dropped every frame of a topic, the topic has no latest frame and is not
// among Topics.
func testLatestFollowsRetention(t *testing.T, open Opener) {
	s := open(t, Config{MaxFrames: 5})
	appendOK(t, s, batch("rare", 1))
	busy := fill(t, s, []string{"busy"}, 4)
	if f, ok := s.Latest("rare"); !ok || f.ID.Seq != 1 {
		t.Fatalf("Latest(rare) = %v %v while retained", f.ID, ok)
	}
	busy = append(busy, fill(t, s, []string{"busy"}, 1)...)
	if f, ok := s.Latest("rare"); ok {
		t.Fatalf("Latest(rare) = %v after retention dropped it (oldest %v)", f.ID, s.Oldest())
	}
	if got := s.Topics(); !slices.Equal(got, []string{"busy"}) {
		t.Fatalf("topics %q", got)
	}
	if f, ok := s.Latest("busy"); !ok || f.ID != busy[4].ID {
		t.Fatalf("Latest(busy) = %v %v", f.ID, ok)
	}
}

// Contract (Close): Appends after Close fail with ErrClosed, store nothing
// and call no hook.
func testAppendAfterClose(t *testing.T, open Opener) {
	s := open(t, Config{})
	var mu sync.Mutex
	hooked := 0
	s.OnCommit(func([]store.Frame) { mu.Lock(); hooked++; mu.Unlock() })
	fill(t, s, three, 2)
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	fs, err := s.Append([]store.Batch{batch("a", 3)})
	if !errors.Is(err, store.ErrClosed) || len(fs) != 0 {
		t.Fatalf("append after close: %d frames, %v; want ErrClosed", len(fs), err)
	}
	mu.Lock()
	defer mu.Unlock()
	if hooked != 2 {
		t.Fatalf("hook called %d times for 2 commits and an append after close", hooked)
	}
}

// Contract (Err): nil while appends succeed (readiness), ErrClosed once
// closed.
func testErrAfterClose(t *testing.T, open Opener) {
	s := open(t, Config{})
	fill(t, s, three, 1)
	if err := s.Err(); err != nil {
		t.Fatalf("Err() = %v after a successful append", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Err(); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Err() = %v after close, want ErrClosed", err)
	}
}

// Contract (Close): a second Close returns nil (and so does the opener's
// cleanup, a third).
func testSecondClose(t *testing.T, open Opener) {
	s := open(t, Config{})
	fill(t, s, three, 1)
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}
