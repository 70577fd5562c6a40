package sse

import (
	"fmt"
	"sync"
	"testing"
	"time"

	sse "github.com/tmaxmax/go-sse"
)

// recvWithin receives from ch, failing the test when nothing comes within d
// (a closed channel gives its zero value and ok false).
func recvWithin[T any](tb testing.TB, ch <-chan T, d time.Duration, what string) (T, bool) {
	tb.Helper()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case v, ok := <-ch:
		return v, ok
	case <-t.C:
		tb.Fatalf("%s: nothing within %v", what, d)
	}
	var zero T
	return zero, false
}

// waitGroupWithin waits for wg, failing the test after d.
func waitGroupWithin(tb testing.TB, wg *sync.WaitGroup, d time.Duration, what string) {
	tb.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	recvWithin(tb, done, d, what)
}

// nextWithin is client.next for other goroutines: it returns an error
// instead of failing the test.
func (c *client) nextWithin(d time.Duration) (sse.Event, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case ev, ok := <-c.events:
		if !ok {
			return sse.Event{}, fmt.Errorf("stream ended (err %v)", c.err)
		}
		return ev, nil
	case <-t.C:
		return sse.Event{}, fmt.Errorf("no event within %v", d)
	}
}
