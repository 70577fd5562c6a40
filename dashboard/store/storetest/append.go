package storetest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"livedash/dashboard/store"
)

// Contract (IDs; Head, Oldest, Len, Err): a new store has no frame. Head is
// Seq 0 in the store's epoch, "before the first frame", and a valid cursor;
// Oldest is Head when the store is empty; Len is 0; Err is nil. Reading after
// the head is OK with no frames and Next at the head; a cursor above it is
// Future and one of another epoch UnknownEpoch. ScanView visits nothing,
// SeekTime answers Head+1, no topic has a latest frame, and Changed is open.
func testEmptyStore(t *testing.T, open Opener) {
	s := open(t, Config{})
	head := s.Head()
	if head != id(s, 0) {
		t.Fatalf("head %v, want %v", head, id(s, 0))
	}
	if s.Oldest() != head || s.Len() != 0 {
		t.Fatalf("empty: oldest %v (want the head %v), len %d", s.Oldest(), head, s.Len())
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err() = %v on a new store", err)
	}
	r := s.After(head, nil, store.Limits{})
	checkRead(t, "after head", r, head, nil, 1, 0, nil)
	if r.Head != head || r.Oldest != head || len(r.Frames) != 0 {
		t.Fatalf("after head: %+v", r)
	}
	v, called := view(t, s, head, nil, store.Limits{})
	if called || v.Err != nil {
		t.Fatalf("AfterView on an empty store called fn %v, err %v", called, v.Err)
	}
	if d := resultDiff(v, r); d != "" {
		t.Fatalf("AfterView: %s", d)
	}
	if r := s.After(id(s, 1), nil, store.Limits{}); r.Reset != store.Future || len(r.Frames) != 0 {
		t.Fatalf("after seq 1 of an empty store: reset %q, %d frames; want future", r.Reset, len(r.Frames))
	}
	if r := s.After(store.ID{Epoch: s.Epoch() ^ 1}, nil, store.Limits{}); r.Reset != store.UnknownEpoch {
		t.Fatalf("other epoch: reset %q", r.Reset)
	}
	last, err := s.ScanView(0, 0, func(uint64, int64, []byte, []byte) bool {
		t.Fatal("ScanView visited a frame of an empty store")
		return false
	})
	if err != nil || last != 0 {
		t.Fatalf("ScanView: last %d err %v", last, err)
	}
	for _, ms := range []int64{math.MinInt64, 0, base.UnixMilli(), math.MaxInt64} {
		if got := s.SeekTime(ms); got != 1 {
			t.Fatalf("SeekTime(%d) = %d, want Head+1 = 1", ms, got)
		}
	}
	if ts := s.Topics(); len(ts) != 0 {
		t.Fatalf("topics %q", ts)
	}
	if _, ok := s.Latest("a"); ok {
		t.Fatal("Latest found a frame in an empty store")
	}
	if isClosed(s.Changed()) {
		t.Fatal("Changed closed before any commit")
	}
}

// Contract (IDs): a new store gets a new random epoch, fixed for the life of
// the value, and every frame carries it.
func testNewStoreNewEpoch(t *testing.T, open Opener) {
	a, b := open(t, Config{}), open(t, Config{})
	if a.Epoch() == b.Epoch() {
		t.Fatalf("two new stores share epoch %016x", a.Epoch())
	}
	e := a.Epoch()
	fs := fill(t, a, []string{"a"}, 3)
	if a.Epoch() != e || a.Head().Epoch != e || a.Oldest().Epoch != e || fs[2].ID.Epoch != e {
		t.Fatalf("epoch changed: %016x, head %v, oldest %v, frame %v; was %016x", a.Epoch(), a.Head(), a.Oldest(), fs[2].ID, e)
	}
}

// Contract (IDs): within an epoch seqs are consecutive and strictly
// increasing across all topics: one Append of n batches gets seqs
// head+1 … head+n in batch order, each frame carrying the store's epoch
// (appendOK checks each call), and the frames read back are those.
func testConsecutiveSeqs(t *testing.T, open Opener) {
	s := open(t, Config{})
	var all []store.Frame
	for _, n := range []int{1, 3, 7, 1, 7} {
		bs := make([]store.Batch, n)
		for i := range bs {
			bs[i] = batch([]string{"a", "b", "c"}[i%3], s.Head().Seq+uint64(i)+1)
		}
		all = append(all, appendOK(t, s, bs...)...)
	}
	if s.Len() != len(all) || s.Oldest() != id(s, 1) || s.Head() != id(s, uint64(len(all))) {
		t.Fatalf("after %d frames: len %d oldest %v head %v", len(all), s.Len(), s.Oldest(), s.Head())
	}
	r := s.After(id(s, 0), nil, store.Limits{})
	checkRead(t, "read back", r, id(s, 0), all, 1, s.Head().Seq, nil)
}

// Contract (IDs; all methods safe for concurrent use; hooks in commit
// order): appends from 8 goroutines at once get every seq 1 … N exactly
// once, no gap, each call's frames consecutive; the commit hooks see the
// seqs in order; the store reads back the frames the calls returned.
func testConcurrentAppends(t *testing.T, open Opener) {
	s := open(t, Config{})
	var mu sync.Mutex
	var hooked []uint64
	s.OnCommit(func(fs []store.Frame) {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range fs {
			hooked = append(hooked, f.ID.Seq)
		}
	})
	const goroutines, calls = 8, 20
	got := make([][]store.Frame, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for j := range calls {
				bs := make([]store.Batch, 1+(g+j)%4)
				for i := range bs {
					bs[i] = batch(fmt.Sprintf("g%d", g), uint64(g*1000+j*10+i))
				}
				fs, err := s.Append(bs)
				if err != nil || len(fs) != len(bs) {
					t.Errorf("goroutine %d call %d: %d frames, %v", g, j, len(fs), err)
					return
				}
				for i, f := range fs {
					if f.ID.Epoch != s.Epoch() || f.ID.Seq != fs[0].ID.Seq+uint64(i) {
						t.Errorf("goroutine %d call %d: frame %d has ID %v after %v", g, j, i, f.ID, fs[0].ID)
					}
					if w := wire(f.ID, bs[i].Topic, f.TS, bs[i].Samples); !bytes.Equal(f.JSON, w) {
						t.Errorf("frame %v: JSON %s, want %s", f.ID, f.JSON, w)
					}
				}
				got[g] = append(got[g], fs...)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var all []store.Frame
	for _, fs := range got {
		all = append(all, fs...)
	}
	slices.SortFunc(all, func(a, b store.Frame) int { return cmp.Compare(a.ID.Seq, b.ID.Seq) })
	for i, f := range all {
		if f.ID.Seq != uint64(i)+1 {
			t.Fatalf("seqs handed out: position %d holds %d (%v)", i, f.ID.Seq, seqs(all))
		}
	}
	n := uint64(len(all))
	if s.Head() != id(s, n) || s.Len() != len(all) {
		t.Fatalf("after %d frames: head %v len %d", n, s.Head(), s.Len())
	}
	mu.Lock()
	h := slices.Clone(hooked)
	mu.Unlock()
	if len(h) != len(all) {
		t.Fatalf("hooks saw %d frames, want %d", len(h), len(all))
	}
	for i, seq := range h {
		if seq != uint64(i)+1 {
			t.Fatalf("hooks saw seq %d at position %d: not in commit order", seq, i)
		}
	}
	for i := range all {
		all[i].Samples = nil // the read-back frames have none
	}
	checkRead(t, "read back", s.After(id(s, 0), nil, store.Limits{}), id(s, 0), all, 1, n, nil)
}

// Contract (Frame.JSON is the exact wire encoding, AppendFrameJSON):
// {"id":"…","topic":"…","ts":…,"samples":[…]}, strings escaped so the bytes
// are inert anywhere, numbers as encoding/json writes them, label keys
// sorted, NaN and ±Inf samples left out; read back byte for byte.
func testFrameJSON(t *testing.T, open Opener) {
	s := open(t, Config{})
	evil := "<img src=x onerror=alert(1)>\n\ndata: x\r\u2028\u202e\xff"
	b := store.Batch{Topic: "t<&>", Time: time.UnixMilli(5), Samples: []store.Sample{
		{Name: evil, Labels: map[string]string{"b": evil, "a": "1"}, Value: 0.121},
		{Name: "nan", Value: math.NaN()},
		{Name: "inf", Value: math.Inf(1)},
		{Name: "big", Value: 1e21},
		{Name: "-inf", Value: math.Inf(-1)},
		{Name: "small", Value: 1e-9},
	}}
	f := appendOK(t, s, b)[0] // JSON equals AppendFrameJSON of the same input
	js := f.JSON
	if bytes.ContainsAny(js, "\n\r<>&") || bytes.Contains(js, []byte("\u2028")) {
		t.Fatalf("unescaped bytes in %s", js)
	}
	var got struct {
		ID      string         `json:"id"`
		Topic   string         `json:"topic"`
		TS      int64          `json:"ts"`
		Samples []store.Sample `json:"samples"`
	}
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	if got.ID != f.ID.String() || got.Topic != "t<&>" || got.TS != 5 || len(got.Samples) != 3 {
		t.Fatalf("decoded %+v from %s", got, js)
	}
	wantName := strings.ToValidUTF8(evil, "\ufffd")
	if got.Samples[0].Name != wantName || got.Samples[0].Labels["b"] != wantName || got.Samples[0].Value != 0.121 {
		t.Fatalf("sample 0 = %+v", got.Samples[0])
	}
	for _, name := range []string{`"nan"`, `"inf"`, `"-inf"`} {
		if bytes.Contains(js, []byte(name)) {
			t.Errorf("non-finite sample %s not left out: %s", name, js)
		}
	}
	for _, want := range []string{`"value":0.121`, `"value":1e+21`, `"value":1e-9`, `"labels":{"a":"1","b":`} {
		if !bytes.Contains(js, []byte(want)) {
			t.Errorf("%s lacks %s", js, want)
		}
	}
	r := s.After(id(s, 0), nil, store.Limits{})
	checkRead(t, "read back", r, id(s, 0), []store.Frame{{ID: f.ID, Topic: f.Topic, TS: f.TS, JSON: f.JSON}}, 1, 1, nil)
}

// Contract (Batch): a zero Time means "now" by the store's clock, the one
// configured as Config.Now; a set Time is the frame's ts as given.
func testZeroTimeIsStoreClock(t *testing.T, open Opener) {
	c := newClock(base)
	s := open(t, Config{Now: c.Now})
	f := appendOK(t, s, c.batch("a"))[0]
	if f.TS != base.UnixMilli() {
		t.Fatalf("zero Time got ts %d, want the clock's %d", f.TS, base.UnixMilli())
	}
	c.Add(90 * time.Second)
	fs := appendOK(t, s, c.batch("a"), store.Batch{Topic: "b", Time: time.UnixMilli(42)})
	if fs[0].TS != base.UnixMilli()+90000 || fs[1].TS != 42 {
		t.Fatalf("ts %d and %d, want %d and 42", fs[0].TS, fs[1].TS, base.UnixMilli()+90000)
	}
}

// Contract (durability first): a frame is visible to readers and to Latest
// by the time the commit hooks see it: inside a hook every committed frame
// reads back with After, its ID is a resumable cursor (not Future), and
// Latest of its topic is the batch's newest frame of that topic. Hooks get
// the frames with their Samples.
func testCommitHooksSeeDurableFrames(t *testing.T, open Opener) {
	s := open(t, Config{})
	var mu sync.Mutex
	var hooked [][]store.Frame
	s.OnCommit(func(fs []store.Frame) {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, slices.Clone(fs))
		newest := map[string]store.Frame{}
		for _, f := range fs {
			newest[f.Topic] = f
			r := s.After(id(s, f.ID.Seq-1), nil, store.Limits{Frames: 1})
			if r.Reset != store.OK || r.Err != nil || len(r.Frames) != 1 || r.Frames[0].ID != f.ID || !bytes.Equal(r.Frames[0].JSON, f.JSON) {
				t.Errorf("in hook: frame %v not readable: reset %q err %v frames %v", f.ID, r.Reset, r.Err, seqs(r.Frames))
			}
			if r := s.After(f.ID, nil, store.Limits{}); r.Reset != store.OK {
				t.Errorf("in hook: cursor %v is %q", f.ID, r.Reset)
			}
			if s.Head().Seq < f.ID.Seq {
				t.Errorf("in hook: head %v behind frame %v", s.Head(), f.ID)
			}
		}
		for topic, f := range newest {
			if l, ok := s.Latest(topic); !ok || l.ID != f.ID || !bytes.Equal(l.JSON, f.JSON) {
				t.Errorf("in hook: Latest(%q) = %v %v, want %v", topic, l.ID, ok, f.ID)
			}
		}
	})
	bs := []store.Batch{batch("a", 1), batch("b", 2), batch("a", 3)}
	ch := s.Changed()
	fs := appendOK(t, s, bs...)
	bs2 := []store.Batch{batch("c", 4)}
	ch2 := s.Changed()
	appendOK(t, s, bs2...)
	if !closedWithin(ch, 10*time.Second) || !closedWithin(ch2, 10*time.Second) {
		t.Fatal("Changed not closed by the commits")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 2 || len(hooked[0]) != len(fs) || len(hooked[1]) != 1 {
		t.Fatalf("hook calls for commits of 3 and 1 frames: %d", len(hooked))
	}
	for i, f := range hooked[0] {
		if f.ID != fs[i].ID || !reflect.DeepEqual(f.Samples, bs[i].Samples) {
			t.Fatalf("hook got frame %v with samples %v, want %v with %v", f.ID, f.Samples, fs[i].ID, bs[i].Samples)
		}
	}
}

// Contract (durability first; OnCommit, Changed): hooks are called in
// registration order and in commit order, once per commit with that
// commit's frames, and Changed's channel is closed only after they ran;
// Changed then hands out a new channel for the next commit.
func testHookOrderAndChanged(t *testing.T, open Opener) {
	s := open(t, Config{})
	var mu sync.Mutex
	var log []string
	var waiting <-chan struct{} // the channel of the commit in progress
	for h := range 3 {
		s.OnCommit(func(fs []store.Frame) {
			mu.Lock()
			defer mu.Unlock()
			if isClosed(waiting) {
				t.Errorf("hook %d: Changed already closed", h)
			}
			log = append(log, fmt.Sprintf("%d:%v", h, seqs(fs)))
			for _, f := range fs {
				if len(f.Samples) == 0 {
					t.Errorf("hook %d: frame %v without samples", h, f.ID)
				}
			}
		})
	}
	var want []string
	for _, n := range []int{2, 1, 3} {
		ch := s.Changed()
		mu.Lock()
		waiting = ch
		mu.Unlock()
		bs := make([]store.Batch, n)
		for i := range bs {
			bs[i] = batch("t", s.Head().Seq+uint64(i)+1)
		}
		fs := appendOK(t, s, bs...)
		if !closedWithin(ch, 10*time.Second) {
			t.Fatal("Changed not closed by the commit")
		}
		for h := range 3 {
			want = append(want, fmt.Sprintf("%d:%v", h, seqs(fs)))
		}
		mu.Lock()
		got := slices.Clone(log)
		mu.Unlock()
		if !slices.Equal(got, want) {
			t.Fatalf("hook calls %q, want %q", got, want)
		}
		if next := s.Changed(); next == ch || isClosed(next) {
			t.Fatal("Changed after a commit did not hand out a new, open channel")
		}
	}
}

// Contract (Append, durability first): a topic that is empty or longer than
// MaxTopicLen fails the whole call with ErrTopic before anything is written:
// no batch of the call is stored, Head, Oldest and Len are unchanged, no
// hook runs and Changed stays open. A rejected topic says nothing about the
// store's health, so Err stays nil.
func testErrTopicWritesNothing(t *testing.T, open Opener) {
	s := open(t, Config{})
	hooked := 0
	var mu sync.Mutex
	s.OnCommit(func([]store.Frame) { mu.Lock(); hooked++; mu.Unlock() })
	all := fill(t, s, []string{"a"}, 2)
	mu.Lock()
	hooked = 0
	mu.Unlock()
	head, oldest := s.Head(), s.Oldest()
	long := strings.Repeat("x", store.MaxTopicLen+1)
	for _, topics := range [][]string{{""}, {long}, {"a", long, "b"}, {"a", "b", ""}} {
		t.Run(fmt.Sprintf("%d topics", len(topics)), func(t *testing.T) {
			ch := s.Changed()
			bs := make([]store.Batch, len(topics))
			for i, topic := range topics {
				bs[i] = batch(topic, head.Seq+uint64(i)+1)
			}
			fs, err := s.Append(bs)
			if !errors.Is(err, store.ErrTopic) || len(fs) != 0 {
				t.Fatalf("append topics of %v bytes: %d frames, %v; want ErrTopic", lens(topics), len(fs), err)
			}
			if s.Head() != head || s.Oldest() != oldest || s.Len() != 2 {
				t.Fatalf("after ErrTopic: head %v oldest %v len %d; want %v %v 2", s.Head(), s.Oldest(), s.Len(), head, oldest)
			}
			checkRead(t, "after ErrTopic", s.After(id(s, 0), nil, store.Limits{}), id(s, 0), all, 1, head.Seq, nil)
			mu.Lock()
			n := hooked
			mu.Unlock()
			if n != 0 || isClosed(ch) {
				t.Fatalf("after ErrTopic: %d hook calls, Changed closed %v", n, isClosed(ch))
			}
			if err := s.Err(); err != nil {
				t.Fatalf("Err() = %v after a rejected topic", err)
			}
		})
	}
	// The store goes on at the next seq.
	appendOK(t, s, batch("a", head.Seq+1))
}

func lens(ss []string) []int {
	out := make([]int, len(ss))
	for i, s := range ss {
		out[i] = len(s)
	}
	return out
}

// Contract (MaxTopicLen is the longest topic a store accepts): a topic of
// exactly MaxTopicLen bytes is stored, read back, filtered on and is a
// topic with a latest frame.
func testMaxTopicLen(t *testing.T, open Opener) {
	s := open(t, Config{})
	topic := strings.Repeat("é", store.MaxTopicLen/2) + "x"
	if len(topic) != store.MaxTopicLen {
		t.Fatalf("test topic of %d bytes", len(topic))
	}
	all := append(fill(t, s, []string{"a"}, 1), appendOK(t, s, batch(topic, 2))...)
	match := func(tp string) bool { return tp == topic }
	checkRead(t, "filter on it", s.After(id(s, 0), match, store.Limits{}), id(s, 0), all, 1, 2, match)
	if l, ok := s.Latest(topic); !ok || l.ID != all[1].ID {
		t.Fatalf("Latest = %v %v", l.ID, ok)
	}
	if got := sortedTopics(s); !slices.Equal(got, []string{"a", topic}) {
		t.Fatalf("topics %q", got)
	}
}
