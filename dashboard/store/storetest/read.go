package storetest

import (
	"fmt"
	"math"
	"testing"

	"livedash/dashboard/store"
)

var three = []string{"cpu", "memory", "load"}
var four = []string{"cpu", "memory", "load", "disk"}

// Contract (reads after a cursor; Result): from every cursor between
// oldest-1 and the head, After returns exactly the retained frames after it,
// in seq order, with Next at the head, More false, and the Result's Head and
// Oldest the store's.
func testReadAfterEveryCursor(t *testing.T, open Opener) {
	s := open(t, Config{MaxFrames: 200})
	all := fill(t, s, three, 300)
	head, oldest := s.Head(), s.Oldest()
	if s.Len() != 200 || oldest != all[100].ID || head != all[299].ID {
		t.Fatalf("bounds: len %d oldest %v head %v", s.Len(), oldest, head)
	}
	for k := oldest.Seq - 1; k <= head.Seq; k++ {
		what := fmt.Sprintf("after %d", k)
		r := s.After(id(s, k), nil, store.Limits{})
		checkRead(t, what, r, id(s, k), all, oldest.Seq, head.Seq, nil)
		if r.More || r.Head != head || r.Oldest != oldest || len(r.Frames) != int(head.Seq-k) {
			t.Fatalf("%s: more %v head %v oldest %v, %d frames", what, r.More, r.Head, r.Oldest, len(r.Frames))
		}
	}
}

// Contract (After: frames copied out of the store): the JSON After returns
// belongs to the caller; writing over it changes nothing stored.
func testAfterCopies(t *testing.T, open Opener) {
	s := open(t, Config{})
	all := fill(t, s, three, 10)
	r := s.After(id(s, 0), nil, store.Limits{})
	checkRead(t, "first read", r, id(s, 0), all, 1, 10, nil)
	for _, f := range r.Frames {
		for i := range f.JSON {
			f.JSON[i] = 'x'
		}
	}
	checkRead(t, "read after scribbling over the first", s.After(id(s, 0), nil, store.Limits{}), id(s, 0), all, 1, 10, nil)
	if l, ok := s.Latest("cpu"); !ok || frameDiff(l, all[9]) != "" {
		t.Fatalf("Latest(cpu) after scribbling over a read: %v %s", ok, frameDiff(l, all[9]))
	}
}

// Contract (Result.Next, Limits.Frames): paging with Limits{Frames: 7} from
// oldest-1, each page resuming after the last page's Next, visits every
// retained frame exactly once, at most 7 a page, and stops at the head.
// With a topic filter it visits every matching frame exactly once.
func testPagingFrames(t *testing.T, open Opener) {
	s := open(t, Config{MaxFrames: 200})
	all := fill(t, s, three, 300)
	head, oldest := s.Head().Seq, s.Oldest().Seq
	for _, match := range []func(string) bool{nil, func(tp string) bool { return tp == "load" }} {
		var got []store.Frame
		cur := id(s, oldest-1)
		for page := 0; ; page++ {
			if page > 300 {
				t.Fatal("paging does not end")
			}
			r := s.After(cur, match, store.Limits{Frames: 7})
			checkRead(t, fmt.Sprintf("page %d after %v", page, cur), r, cur, all, oldest, head, match)
			if len(r.Frames) > 7 {
				t.Fatalf("page %d: %d frames", page, len(r.Frames))
			}
			got = append(got, r.Frames...)
			cur = r.Next
			if !r.More {
				break
			}
		}
		var want []store.Frame
		for _, f := range all[oldest-1:] {
			if match == nil || match(f.Topic) {
				want = append(want, f)
			}
		}
		sameFrames(t, "paged", got, want)
	}
}

// Contract (Limits.Bytes): a read returns at most Bytes of JSON, except that
// it returns at least one frame; More and Next say where it stopped, and
// paging by bytes visits every frame once.
func testLimitBytes(t *testing.T, open Opener) {
	s := open(t, Config{})
	all := fill(t, s, []string{"a", "b"}, 30)
	head := s.Head().Seq
	zero := id(s, 0)
	l0, l1, l2 := len(all[0].JSON), len(all[1].JSON), len(all[2].JSON)
	for _, tc := range []struct {
		bytes, frames int
	}{
		{1, 1},                // at least one frame, however small the bound
		{l0, 1},               // exactly one frame's worth
		{l0 + l1, 2},          // exactly two
		{l0 + l1 + l2 - 1, 2}, // one byte short of three
		{1 << 30, 30},         // no bound reached
	} {
		what := fmt.Sprintf("Bytes %d", tc.bytes)
		r := s.After(zero, nil, store.Limits{Bytes: tc.bytes})
		checkRead(t, what, r, zero, all, 1, head, nil)
		if len(r.Frames) != tc.frames || r.More != (tc.frames < 30) {
			t.Fatalf("%s: %d frames more %v, want %d", what, len(r.Frames), r.More, tc.frames)
		}
	}
	// Filtered: the first matching frame, even over the bound.
	onlyB := func(tp string) bool { return tp == "b" }
	r := s.After(zero, onlyB, store.Limits{Bytes: 1})
	checkRead(t, "Bytes 1 topic b", r, zero, all, 1, head, onlyB)
	if len(r.Frames) != 1 || !r.More {
		t.Fatalf("Bytes 1 topic b: %d frames more %v", len(r.Frames), r.More)
	}
	var got []store.Frame
	for cur := zero; ; {
		r := s.After(cur, nil, store.Limits{Bytes: 3 * l0})
		checkRead(t, fmt.Sprintf("page after %v", cur), r, cur, all, 1, head, nil)
		n := 0
		for _, f := range r.Frames {
			n += len(f.JSON)
		}
		if n > 3*l0 && len(r.Frames) > 1 {
			t.Fatalf("page after %v: %d bytes over the bound %d", cur, n, 3*l0)
		}
		got = append(got, r.Frames...)
		if cur = r.Next; !r.More {
			break
		}
	}
	sameFrames(t, "paged by bytes", got, all)
}

// Contract (Limits.Scan, Result.Next): Scan bounds the frames a read visits,
// matching or not. A read that stops at it says so (More) and says how far
// it looked: Next is Scan frames past the cursor (seqs are contiguous from
// oldest-1 to the head), so a rare topic is found by paging on from Next,
// every matching frame exactly once.
func testLimitScan(t *testing.T, open Opener) {
	s := open(t, Config{})
	all := fill(t, s, four, 40)
	head := s.Head().Seq
	onlyLoad := func(tp string) bool { return tp == "load" }
	zero := id(s, 0)
	r := s.After(zero, onlyLoad, store.Limits{Scan: 10})
	checkRead(t, "Scan 10", r, zero, all, 1, head, onlyLoad)
	if !r.More || r.Next.Seq != 10 || len(r.Frames) != 2 {
		t.Fatalf("Scan 10: more %v next %v, %d frames; want More, next 10 and 2 frames", r.More, r.Next, len(r.Frames))
	}
	r = s.After(id(s, 35), onlyLoad, store.Limits{Scan: 10})
	checkRead(t, "Scan 10 near the head", r, id(s, 35), all, 1, head, onlyLoad)
	if r.More {
		t.Fatal("Scan 10 with 5 frames left: More")
	}
	var got []store.Frame
	for cur, page := zero, 0; ; page++ {
		r := s.After(cur, onlyLoad, store.Limits{Scan: 10})
		checkRead(t, fmt.Sprintf("page after %v", cur), r, cur, all, 1, head, onlyLoad)
		if r.More && r.Next.Seq != cur.Seq+10 {
			t.Fatalf("page after %v: next %v, want the scan bound %d", cur, r.Next, cur.Seq+10)
		}
		got = append(got, r.Frames...)
		if cur = r.Next; !r.More {
			break
		}
	}
	var want []store.Frame
	for _, f := range all {
		if onlyLoad(f.Topic) {
			want = append(want, f)
		}
	}
	sameFrames(t, "paged by scan", got, want)
}

// Contract (Result.Next with a filter): a read stopped by the frame limit
// returns the first matching frames and a Next that does not skip the next
// matching one.
func testLimitFramesWithFilter(t *testing.T, open Opener) {
	s := open(t, Config{})
	all := fill(t, s, four, 40)
	onlyLoad := func(tp string) bool { return tp == "load" }
	r := s.After(id(s, 0), onlyLoad, store.Limits{Frames: 2})
	checkRead(t, "Frames 2 topic load", r, id(s, 0), all, 1, s.Head().Seq, onlyLoad)
	if len(r.Frames) != 2 || !r.More || r.Frames[1].ID != all[6].ID {
		t.Fatalf("Frames 2 topic load: %v more %v", seqs(r.Frames), r.More)
	}
}

// Contract (Limits.Until): a read returns no frame with a seq above Until,
// as if Until were the head (Next at Until, More false when only Until
// stopped it), while the cursor checks and the Result's Head use the real
// head: a cursor above Until but not above the head is OK, one above the
// head is Future, one below oldest-1 Expired.
func testLimitUntil(t *testing.T, open Opener) {
	s := open(t, Config{MaxFrames: 50})
	all := fill(t, s, three, 60)
	head, oldest := s.Head(), s.Oldest()
	const until = 40
	for _, tc := range []struct {
		cur    uint64
		frames int
		more   bool
	}{
		{20, 0, false},
		{20, 20, false}, // the frame limit and Until meet: nothing left below Until
		{20, 7, true},
		{oldest.Seq - 1, 0, false},
		{until, 0, false},
		{until + 5, 0, false}, // above Until, not above the head: OK, nothing to read
	} {
		what := fmt.Sprintf("after %d until %d frames %d", tc.cur, until, tc.frames)
		cur := id(s, tc.cur)
		lim := store.Limits{Until: until, Frames: tc.frames}
		r := s.After(cur, nil, lim)
		checkRead(t, what, r, cur, all, oldest.Seq, until, nil)
		if r.More != tc.more || r.Head != head || r.Oldest != oldest {
			t.Fatalf("%s: more %v head %v oldest %v; want more %v head %v oldest %v", what, r.More, r.Head, r.Oldest, tc.more, head, oldest)
		}
		v, _ := view(t, s, cur, nil, lim)
		if d := resultDiff(v, r); d != "" {
			t.Fatalf("%s: AfterView %s", what, d)
		}
		sameFrames(t, what+" AfterView", v.Frames, r.Frames)
	}
	r := s.After(id(s, 20), nil, store.Limits{Until: head.Seq + 100})
	checkRead(t, "until past the head", r, id(s, 20), all, oldest.Seq, head.Seq, nil)
	for _, tc := range []struct {
		cur, until uint64
		want       store.Reason
	}{
		{head.Seq + 1, head.Seq + 10, store.Future},
		{oldest.Seq - 2, until, store.Expired},
		{0, until, store.Expired},
	} {
		what := fmt.Sprintf("after %d until %d", tc.cur, tc.until)
		r := s.After(id(s, tc.cur), nil, store.Limits{Until: tc.until})
		if r.Reset != tc.want || len(r.Frames) != 0 || r.Head != head {
			t.Fatalf("%s: reset %q, %d frames, head %v; want %q", what, r.Reset, len(r.Frames), r.Head, tc.want)
		}
		if v, called := view(t, s, id(s, tc.cur), nil, store.Limits{Until: tc.until}); v.Reset != tc.want || called {
			t.Fatalf("%s: AfterView reset %q, fn called %v", what, v.Reset, called)
		}
	}
}

// Contract (After's match): only frames whose topic matches are returned,
// all of them, in order; a filter that matches nothing reads up to the head
// and returns no frame.
func testTopicFilter(t *testing.T, open Opener) {
	s := open(t, Config{})
	all := fill(t, s, four, 40)
	head := s.Head().Seq
	for _, match := range []func(string) bool{
		func(tp string) bool { return tp == "cpu" || tp == "load" },
		func(tp string) bool { return tp == "disk" },
		func(string) bool { return false },
	} {
		r := s.After(id(s, 0), match, store.Limits{})
		checkRead(t, "filtered", r, id(s, 0), all, 1, head, match)
		for _, f := range r.Frames {
			if !match(f.Topic) {
				t.Fatalf("frame %v of topic %q does not match", f.ID, f.Topic)
			}
		}
		v, _ := view(t, s, id(s, 0), match, store.Limits{})
		sameFrames(t, "AfterView filtered", v.Frames, r.Frames)
	}
}

// Contract (AfterView): AfterView is After without the copy: for every
// cursor, filter and limit, the same Next, More, Head, Oldest and Reset, fn
// called for the same frames in the same order with the same seq, ts, topic
// and JSON bytes, and the Result's Frames nil; on a Reset fn is never called.
func testAfterViewEqualsAfter(t *testing.T, open Opener) {
	s := open(t, Config{MaxFrames: 200})
	all := fill(t, s, three, 300)
	head, oldest := s.Head().Seq, s.Oldest().Seq
	cursors := []store.ID{id(s, 50), id(s, head+1), {Epoch: s.Epoch() ^ 1, Seq: 200}}
	for k := oldest - 1; k <= head; k += 13 {
		cursors = append(cursors, id(s, k))
	}
	cursors = append(cursors, id(s, head))
	notMemory := func(tp string) bool { return tp != "memory" }
	for _, lim := range []store.Limits{{}, {Frames: 7}, {Bytes: 1}, {Bytes: 600}, {Scan: 10}, {Until: 250}, {Until: 250, Frames: 7}} {
		for _, match := range []func(string) bool{nil, notMemory} {
			for _, cur := range cursors {
				what := fmt.Sprintf("after %v %+v filtered %v", cur, lim, match != nil)
				want := s.After(cur, match, lim)
				got, called := view(t, s, cur, match, lim)
				if got.Err != nil || want.Err != nil {
					t.Fatalf("%s: errors %v, %v", what, got.Err, want.Err)
				}
				if d := resultDiff(got, want); d != "" {
					t.Fatalf("%s: AfterView %s", what, d)
				}
				sameFrames(t, what, got.Frames, want.Frames)
				if want.Reset != store.OK {
					if called {
						t.Fatalf("%s: fn called on a reset", what)
					}
					continue
				}
				end := head
				if lim.Until > 0 {
					end = min(head, lim.Until)
				}
				checkRead(t, what, want, cur, all, oldest, end, match)
			}
		}
	}
}

// Contract (reads at the edges): a cursor of another epoch is UnknownEpoch,
// above the head Future, below oldest-1 Expired (some frame after it is
// gone); a cursor equal to the head or to oldest-1 is fine. A Reset result
// holds no frames and still says where the store is (Head, Oldest), and
// AfterView's fn is never called for it.
func testCursorEdges(t *testing.T, open Opener) {
	s := open(t, Config{MaxFrames: 200})
	all := fill(t, s, three, 300)
	head, oldest := s.Head(), s.Oldest()
	for _, tc := range []struct {
		name string
		cur  store.ID
		want store.Reason
	}{
		{"other epoch", store.ID{Epoch: s.Epoch() ^ 1, Seq: 250}, store.UnknownEpoch},
		{"other epoch seq 0", store.ID{Epoch: s.Epoch() ^ 1}, store.UnknownEpoch},
		{"zero epoch", store.ID{Seq: 250}, store.UnknownEpoch},
		{"head+1", id(s, head.Seq+1), store.Future},
		{"far future", id(s, math.MaxUint64), store.Future},
		{"oldest-2", id(s, oldest.Seq-2), store.Expired},
		{"seq 0", id(s, 0), store.Expired},
		{"head", head, store.OK},
		{"oldest-1", id(s, oldest.Seq-1), store.OK},
		{"oldest", oldest, store.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cur.Epoch == 0 && s.Epoch() == 0 {
				t.Skip("store epoch is 0")
			}
			for _, lim := range []store.Limits{{}, {Frames: 1}, {Until: head.Seq - 10}} {
				r := s.After(tc.cur, nil, lim)
				if r.Reset != tc.want || r.Err != nil {
					t.Fatalf("%+v: reset %q err %v, want %q", lim, r.Reset, r.Err, tc.want)
				}
				if r.Head != head || r.Oldest != oldest {
					t.Fatalf("%+v: head %v oldest %v, want %v %v", lim, r.Head, r.Oldest, head, oldest)
				}
				v, called := view(t, s, tc.cur, nil, lim)
				if d := resultDiff(v, r); d != "" {
					t.Fatalf("%+v: AfterView %s", lim, d)
				}
				if tc.want != store.OK {
					if len(r.Frames) != 0 || called {
						t.Fatalf("%+v: reset %q with %d frames, AfterView fn called %v", lim, r.Reset, len(r.Frames), called)
					}
					continue
				}
				end := head.Seq
				if lim.Until > 0 {
					end = lim.Until
				}
				checkRead(t, fmt.Sprintf("%+v", lim), r, tc.cur, all, oldest.Seq, end, nil)
				sameFrames(t, "AfterView", v.Frames, r.Frames)
			}
		})
	}
}
