package storetest

import (
	"errors"
	"fmt"
	"sync/atomic"

	"livedash/dashboard/store"
)

// ErrInjected is the error a Faulty store returns from an operation
// switched to fail. It wraps no storage error: tests match it with
// errors.Is.
var ErrInjected = errors.New("storetest: injected store failure")

// Op names the operations of a store that a Faulty store can fail; they
// combine with |.
type Op uint32

const (
	OpAfter Op = 1 << iota
	OpAfterView
	OpScanView
	OpSeekTime
	OpAppend
	OpClose

	// OpReads are every read a Faulty store can fail.
	OpReads = OpAfter | OpAfterView | OpScanView | OpSeekTime
)

// Faulty is a store.Store that fails chosen operations on demand, for
// testing what its users do when storage fails. With nothing switched on it
// is its Store, unchanged (it passes the contract suite). The switches are
// atomic: a test may flip them while other goroutines use the store.
//
// A failed operation does what the contract allows a failing store to do:
//
//   - After returns a Result with Err set and no frames (Head and Oldest as
//     of the call).
//   - AfterView first runs the real read, so fn sees the frames, and then
//     reports Err: the worst case the contract allows ("on Err the frames fn
//     saw must be discarded").
//   - ScanView calls fn for nothing and returns the cursor and the error.
//   - SeekTime, which has no error result, answers Head+1 ("every frame is
//     older"): a caller that trusts it finds no frame in any window.
//   - Append stores nothing and returns an error wrapping ErrInjected; Err
//     then reports it until an Append succeeds.
//   - Close closes the store underneath (its file is released) and returns
//     an error wrapping ErrInjected.
type Faulty struct {
	store.Store

	failing atomic.Uint32 // the Ops that fail
	spare   atomic.Int64  // calls of failing Ops that still succeed first
	calls   [6]atomic.Int64
	lastErr atomic.Pointer[error] // the injected error of the last Append; nil after a success
}

// NewFaulty wraps s; nothing fails until Fail or FailAfter is called.
func NewFaulty(s store.Store) *Faulty { return &Faulty{Store: s} }

// Fail makes ops fail from now on (in addition to those failing already).
func (f *Faulty) Fail(ops Op) {
	f.spare.Store(0)
	f.orFailing(ops)
}

// FailAfter makes ops fail after n more of their calls have succeeded (n
// counted over all of ops together): FailAfter(OpAfterView, 1) lets one
// AfterView through and fails every later one.
func (f *Faulty) FailAfter(ops Op, n int) {
	f.spare.Store(int64(n))
	f.orFailing(ops)
}

func (f *Faulty) orFailing(ops Op) {
	for {
		old := f.failing.Load()
		if f.failing.CompareAndSwap(old, old|uint32(ops)) {
			return
		}
	}
}

// Heal makes ops succeed again.
func (f *Faulty) Heal(ops Op) {
	for {
		old := f.failing.Load()
		if f.failing.CompareAndSwap(old, old&^uint32(ops)) {
			return
		}
	}
}

// Calls is how many times op was called, failed or not (one Op only).
func (f *Faulty) Calls(op Op) int64 {
	for i := range f.calls {
		if op == 1<<i {
			return f.calls[i].Load()
		}
	}
	panic(fmt.Sprintf("storetest: Calls of %#x: want exactly one Op", uint32(op)))
}

// fails counts a call of op and says whether it fails.
func (f *Faulty) fails(op Op) bool {
	for i := range f.calls {
		if op == 1<<i {
			f.calls[i].Add(1)
		}
	}
	if f.failing.Load()&uint32(op) == 0 {
		return false
	}
	for {
		n := f.spare.Load()
		if n <= 0 {
			return true
		}
		if f.spare.CompareAndSwap(n, n-1) {
			return false
		}
	}
}

func (f *Faulty) injected(what string) error { return fmt.Errorf("%s: %w", what, ErrInjected) }

// Err is the injected error of the last Append when it failed, else the
// Store's own.
func (f *Faulty) Err() error {
	if err := f.Store.Err(); err != nil {
		return err
	}
	if p := f.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *Faulty) Append(batches []store.Batch) ([]store.Frame, error) {
	if f.fails(OpAppend) {
		err := f.injected("append")
		f.lastErr.Store(&err)
		return nil, err
	}
	fs, err := f.Store.Append(batches)
	if err == nil {
		f.lastErr.Store(nil)
	}
	return fs, err
}

func (f *Faulty) After(cursor store.ID, match func(topic string) bool, lim store.Limits) store.Result {
	if f.fails(OpAfter) {
		return store.Result{Head: f.Head(), Oldest: f.Oldest(), Err: f.injected("after")}
	}
	return f.Store.After(cursor, match, lim)
}

func (f *Faulty) AfterView(cursor store.ID, match func(topic []byte) bool, lim store.Limits, fn func(seq uint64, ts int64, topic, json []byte)) store.Result {
	fail := f.fails(OpAfterView)
	r := f.Store.AfterView(cursor, match, lim, fn)
	if fail {
		r.Err = f.injected("after view")
	}
	return r
}

func (f *Faulty) ScanView(after uint64, max int, fn func(seq uint64, ts int64, topic, json []byte) bool) (uint64, error) {
	if f.fails(OpScanView) {
		return after, f.injected("scan view")
	}
	return f.Store.ScanView(after, max, fn)
}

func (f *Faulty) SeekTime(ms int64) uint64 {
	if f.fails(OpSeekTime) {
		return f.Head().Seq + 1
	}
	return f.Store.SeekTime(ms)
}

func (f *Faulty) Close() error {
	fail := f.fails(OpClose)
	err := f.Store.Close()
	if fail {
		return errors.Join(f.injected("close"), err)
	}
	return err
}
