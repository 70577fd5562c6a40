package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"livedash/dashboard/store"
)

// Contract (retention by count): after every append the ring holds at most
// MaxFrames frames — trimmed in the same step as the append, even when one
// call brings more than MaxFrames — and they are the newest ones: frames go
// oldest first and nothing else is dropped (no age limit here). Oldest only
// grows, and reading after oldest-1 returns every retained frame.
func testRetentionByCount(t *testing.T, open Opener) {
	const maxFrames = 10
	s := open(t, Config{MaxFrames: maxFrames})
	var all []store.Frame
	prev := s.Oldest()
	for _, n := range []int{1, 3, 7, 1, 2, 12, 1, 9, 10, 3} {
		bs := make([]store.Batch, n)
		for i := range bs {
			bs[i] = batch(three[i%3], s.Head().Seq+uint64(i)+1)
		}
		all = append(all, appendOK(t, s, bs...)...)
		want := min(len(all), maxFrames)
		oldest := s.Oldest()
		if s.Len() != want || oldest != all[len(all)-want].ID {
			t.Fatalf("after %d frames: len %d oldest %v; want %d from %v", len(all), s.Len(), oldest, want, all[len(all)-want].ID)
		}
		if oldest.Seq < prev.Seq {
			t.Fatalf("oldest went back from %v to %v", prev, oldest)
		}
		prev = oldest
		r := s.After(id(s, oldest.Seq-1), nil, store.Limits{})
		checkRead(t, fmt.Sprintf("after oldest-1 at %d frames", len(all)), r, id(s, oldest.Seq-1), all, oldest.Seq, s.Head().Seq, nil)
		if len(r.Frames) != want {
			t.Fatalf("%d frames read, want %d", len(r.Frames), want)
		}
	}
}

// Contract (reads at the edges; the cursor is checked in the same read as
// the frames): a cursor that was fine before a trim and is below oldest-1
// after it is reported Expired, with no frames — never a silent partial
// read — while a cursor still at oldest-1 reads on.
func testExpiredNeverPartial(t *testing.T, open Opener) {
	s := open(t, Config{MaxFrames: 10})
	all := fill(t, s, three, 10)
	cur := id(s, 0)
	checkRead(t, "before the trim", s.After(cur, nil, store.Limits{}), cur, all, 1, 10, nil)
	all = append(all, fill(t, s, three, 1)...)
	for _, lim := range []store.Limits{{}, {Frames: 1}, {Until: 5}} {
		r := s.After(cur, nil, lim)
		if r.Reset != store.Expired || len(r.Frames) != 0 {
			t.Fatalf("%+v: after a trimmed cursor: reset %q, %d frames; want expired and none", lim, r.Reset, len(r.Frames))
		}
		if r.Oldest != id(s, 2) || r.Head != id(s, 11) {
			t.Fatalf("%+v: expired result says oldest %v head %v", lim, r.Oldest, r.Head)
		}
		if v, called := view(t, s, cur, nil, lim); v.Reset != store.Expired || called {
			t.Fatalf("%+v: AfterView reset %q, fn called %v", lim, v.Reset, called)
		}
	}
	checkRead(t, "after oldest-1", s.After(id(s, 1), nil, store.Limits{}), id(s, 1), all, 2, 11, nil)
}

// Contract (the cursor is checked in the same read as the frames; a cursor
// equal to the head is fine): while another goroutine appends and retention
// trims — a little per append, or everything before each append when one
// call brings more than MaxFrames — every read after a cursor is either
// Expired with no frames, in agreement with the bounds it reports, or OK
// with the frames right after the cursor, contiguous up to Next: a trim
// between two calls is reported, never skipped.
func testExpiredUnderConcurrentTrim(t *testing.T, open Opener) {
	for _, size := range []int{2, 25} {
		t.Run(fmt.Sprintf("batches of %d", size), func(t *testing.T) {
			s := open(t, Config{MaxFrames: 20})
			fill(t, s, three, 20)
			done := make(chan struct{})
			var wg sync.WaitGroup
			defer wg.Wait() // also when a check below fails: the store outlives the appends
			wg.Go(func() {
				defer close(done)
				bs := make([]store.Batch, size)
				for i := range 300 / size * 2 {
					for j := range bs {
						bs[j] = batch(three[j%3], uint64(i*size+j))
					}
					if _, err := s.Append(bs); err != nil {
						t.Errorf("append: %v", err)
						return
					}
				}
			})
			cur := id(s, 0)
			expired, read := 0, 0
			for running := true; running; {
				select {
				case <-done:
					running = false // one more read after the last append
				default:
				}
				r := s.After(cur, nil, store.Limits{Frames: 5})
				switch {
				case r.Err != nil:
					t.Fatalf("after %v: %v", cur, r.Err)
				case r.Reset == store.Expired:
					// The cursor is below oldest-1, or below the head of a
					// ring that holds no frame (Oldest is Head then).
					if len(r.Frames) != 0 || (r.Oldest.Seq <= cur.Seq+1 && (r.Oldest != r.Head || cur.Seq >= r.Head.Seq)) {
						t.Fatalf("expired after %v with %d frames, oldest %v head %v", cur, len(r.Frames), r.Oldest, r.Head)
					}
					expired++
					cur = id(s, r.Oldest.Seq-1)
				case r.Reset != store.OK:
					t.Fatalf("after %v: reset %q (head %v)", cur, r.Reset, r.Head)
				default:
					for i, f := range r.Frames {
						if f.ID.Seq != cur.Seq+uint64(i)+1 {
							t.Fatalf("after %v: frames %v, not the ones right after the cursor", cur, seqs(r.Frames))
						}
					}
					if r.Next.Seq != cur.Seq+uint64(len(r.Frames)) {
						t.Fatalf("after %v: %d frames, next %v", cur, len(r.Frames), r.Next)
					}
					read += len(r.Frames)
					cur = r.Next
				}
			}
			t.Logf("%d frames read, %d expired cursors", read, expired)
		})
	}
}

// Contract (retention by age): frames older than MaxAge by the store's clock
// are dropped, oldest first, in the appends that follow; frames within
// MaxAge are kept. An implementation may bound how many frames one append
// drops, so this checks that the old frames are gone after enough appends,
// not how many go per append.
func testRetentionByAge(t *testing.T, open Opener) {
	c := newClock(base)
	s := open(t, Config{MaxAge: time.Hour, Now: c.Now})
	var all []store.Frame
	for range 50 {
		all = append(all, appendOK(t, s, c.batch("t"))...)
		c.Add(time.Minute)
	}
	if s.Len() != 50 || s.Oldest() != id(s, 1) {
		t.Fatalf("frames within MaxAge dropped: len %d oldest %v", s.Len(), s.Oldest())
	}
	// 70.5 minutes after the first frame, the frames stamped 0 … 10 minutes
	// (seqs 1 … 11) are older than an hour; the rest are not.
	c.Add(20*time.Minute + 30*time.Second)
	old := uint64(11)
	prev := s.Oldest()
	for i := 0; s.Oldest().Seq <= old; i++ {
		if i == 50 {
			t.Fatalf("after 50 appends the frames older than MaxAge are still there: oldest %v", s.Oldest())
		}
		all = append(all, appendOK(t, s, c.batch("t"))...)
		if s.Oldest().Seq < prev.Seq {
			t.Fatalf("oldest went back from %v to %v", prev, s.Oldest())
		}
		prev = s.Oldest()
	}
	head := s.Head()
	if s.Oldest() != id(s, old+1) || s.Len() != int(head.Seq-old) {
		t.Fatalf("dropped more than the old frames: oldest %v len %d head %v", s.Oldest(), s.Len(), head)
	}
	checkRead(t, "after the old frames", s.After(id(s, old), nil, store.Limits{}), id(s, old), all, old+1, head.Seq, nil)
	if r := s.After(id(s, old-1), nil, store.Limits{}); r.Reset != store.Expired {
		t.Fatalf("cursor before a frame dropped for age: reset %q", r.Reset)
	}
	// Two hours on, everything is old and goes, except what is appended now.
	c.Add(2 * time.Hour)
	for i := 0; s.Len() > 1; i++ {
		if i == 100 {
			t.Fatalf("after 100 appends: len %d", s.Len())
		}
		appendOK(t, s, c.batch("t"))
	}
	if s.Oldest() != s.Head() {
		t.Fatalf("oldest %v head %v", s.Oldest(), s.Head())
	}
}

// Contract (retention by age; IDs; Oldest): a ring that age retention
// empties keeps its head: Head stays, Len is 0, Oldest is Head, the head is
// a fine cursor with nothing after it while head-1 is Expired, SeekTime
// answers Head+1, no topic has a latest frame, and the next frame gets
// Head+1.
func testAgeEmptiesRing(t *testing.T, open Opener) {
	c := newClock(base)
	s := open(t, Config{MaxAge: time.Minute, Now: c.Now})
	fill(t, s, []string{"a"}, 5)
	c.Add(time.Hour)
	for i := 0; s.Len() > 0; i++ {
		if i == 10 {
			t.Fatalf("ring not emptied by frames older than MaxAge: len %d", s.Len())
		}
		// A frame stamped two hours back is itself past MaxAge.
		appendOK(t, s, store.Batch{Topic: "a", Time: c.Now().Add(-2 * time.Hour)})
	}
	head := s.Head()
	if head.Seq < 6 || s.Oldest() != head {
		t.Fatalf("emptied ring: head %v oldest %v", head, s.Oldest())
	}
	r := s.After(head, nil, store.Limits{})
	checkRead(t, "after the head", r, head, nil, head.Seq+1, head.Seq, nil)
	if r.Head != head || r.Oldest != head {
		t.Fatalf("after the head: head %v oldest %v", r.Head, r.Oldest)
	}
	if r := s.After(id(s, head.Seq-1), nil, store.Limits{}); r.Reset != store.Expired || r.Oldest != head {
		t.Fatalf("after head-1: reset %q oldest %v", r.Reset, r.Oldest)
	}
	if got := s.SeekTime(0); got != head.Seq+1 {
		t.Fatalf("SeekTime = %d, want %d", got, head.Seq+1)
	}
	if _, err := s.ScanView(0, 0, func(seq uint64, _ int64, _, _ []byte) bool {
		t.Fatalf("ScanView visited %d of an empty ring", seq)
		return false
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Latest("a"); ok || len(s.Topics()) != 0 {
		t.Fatalf("emptied ring has latest frames: topics %q", s.Topics())
	}
	f := appendOK(t, s, c.batch("a"))[0]
	if f.ID.Seq != head.Seq+1 || s.Oldest() != f.ID {
		t.Fatalf("next frame %v, oldest %v", f.ID, s.Oldest())
	}
}

// Contract (retention by age; IDs): a clock that goes back drops nothing and
// changes nothing about seq order.
func testClockBackwards(t *testing.T, open Opener) {
	c := newClock(base)
	s := open(t, Config{MaxAge: time.Hour, Now: c.Now})
	all := fill(t, s, []string{"t"}, 30)
	for range 30 {
		all = append(all, appendOK(t, s, c.batch("t"))...)
	}
	c.Add(-3 * time.Hour)
	all = append(all, appendOK(t, s, c.batch("t"))...)
	if s.Len() != 61 || s.Head() != id(s, 61) {
		t.Fatalf("after the clock went back: len %d head %v", s.Len(), s.Head())
	}
	checkRead(t, "read back", s.After(id(s, 0), nil, store.Limits{}), id(s, 0), all, 1, 61, nil)
}
