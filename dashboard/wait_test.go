package dashboard_test

import (
	"testing"
	"time"
)

// waitUntil polls cond until it holds, failing the test after d: d is a
// ceiling that catches a hang, not a latency goal.
func waitUntil(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recvWithin receives from ch, failing the test when nothing comes within d.
func recvWithin[T any](tb testing.TB, ch <-chan T, d time.Duration, what string) T {
	tb.Helper()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case v := <-ch:
		return v
	case <-t.C:
		tb.Fatalf("%s: nothing within %v", what, d)
	}
	var zero T
	return zero
}
