package bolt

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"livedash/dashboard/store"
	"livedash/dashboard/store/storetest"
)

// A Faulty store with nothing switched on passes the contract suite: the
// failure-path tests of the store's users run against a store that differs
// from bbolt only in what they switch on.
func TestFaultyKeepsTheContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg storetest.Config) store.Store {
		path := filepath.Join(t.TempDir(), "ring.db")
		s, err := Open(Options{Path: path, MaxFrames: cfg.MaxFrames, MaxAge: cfg.MaxAge, Now: cfg.Now, NoSync: true})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		f := storetest.NewFaulty(s)
		t.Cleanup(func() {
			if err := f.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		return f
	})
}

// Each switch of a Faulty store fails its operation with ErrInjected as its
// doc says, FailAfter lets the given number of calls through first, and Heal
// ends the failures; nothing failed is written.
func TestFaultySwitches(t *testing.T) {
	s := openTest(t, Options{NoSync: true})
	f := storetest.NewFaulty(s)
	appendN(t, s, []string{"a", "b"}, 6)
	cur := store.ID{Epoch: s.Epoch()}
	head := s.Head()

	f.Fail(storetest.OpAppend)
	if fs, err := f.Append([]store.Batch{batch("a", 1)}); !errors.Is(err, storetest.ErrInjected) || fs != nil {
		t.Fatalf("failing Append: %d frames, %v", len(fs), err)
	}
	if !errors.Is(f.Err(), storetest.ErrInjected) || s.Head() != head {
		t.Fatalf("after a failing Append: Err %v, head %v (want %v)", f.Err(), s.Head(), head)
	}
	f.Heal(storetest.OpAppend)
	if _, err := f.Append([]store.Batch{batch("a", 1)}); err != nil || f.Err() != nil {
		t.Fatalf("healed Append: %v, Err %v", err, f.Err())
	}
	head = s.Head()

	f.Fail(storetest.OpReads)
	if r := f.After(cur, nil, store.Limits{}); !errors.Is(r.Err, storetest.ErrInjected) || len(r.Frames) != 0 || r.Head != head {
		t.Fatalf("failing After: err %v, %d frames, head %v", r.Err, len(r.Frames), r.Head)
	}
	seen := 0
	if r := f.AfterView(cur, nil, store.Limits{}, func(uint64, int64, []byte, []byte) { seen++ }); !errors.Is(r.Err, storetest.ErrInjected) || seen != 7 {
		t.Fatalf("failing AfterView: err %v after showing %d frames, want 7 shown then the error", r.Err, seen)
	}
	called := false
	if last, err := f.ScanView(2, 0, func(uint64, int64, []byte, []byte) bool { called = true; return true }); !errors.Is(err, storetest.ErrInjected) || last != 2 || called {
		t.Fatalf("failing ScanView: %d, %v, fn called %v", last, err, called)
	}
	if got := f.SeekTime(time.UnixMilli(1764255600123).UnixMilli()); got != head.Seq+1 {
		t.Fatalf("failing SeekTime = %d, want head+1 = %d", got, head.Seq+1)
	}
	f.Heal(storetest.OpReads)

	f.FailAfter(storetest.OpAfterView, 2)
	for i, wantErr := range []bool{false, false, true, true} {
		r := f.AfterView(cur, nil, store.Limits{Frames: 1}, func(uint64, int64, []byte, []byte) {})
		if (r.Err != nil) != wantErr {
			t.Fatalf("AfterView %d after FailAfter(2): err %v", i+1, r.Err)
		}
	}
	if r := f.After(cur, nil, store.Limits{}); r.Err != nil {
		t.Fatalf("After fails while only AfterView was switched: %v", r.Err)
	}
	if n := f.Calls(storetest.OpAfterView); n != 5 {
		t.Fatalf("Calls(OpAfterView) = %d, want 5", n)
	}
	f.Heal(storetest.OpAfterView)

	f.Fail(storetest.OpClose)
	if err := f.Close(); !errors.Is(err, storetest.ErrInjected) {
		t.Fatalf("failing Close: %v", err)
	}
	if _, err := s.Append([]store.Batch{batch("a", 1)}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("a failing Close left the store open: %v", err)
	}
}
