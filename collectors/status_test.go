package collectors

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// Status reports each job's last outcome: a panic and an error are named,
// and a good collect clears the error and stamps LastOK.
func TestStatusReportsLastOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := 0
		flaky := testJob("flaky", time.Second, func(context.Context, time.Time) ([]Sample, error) {
			n++
			if n < 3 {
				return nil, errors.New("device busy")
			}
			return one(1), nil
		})
		bad := testJob("bad", time.Second, func(context.Context, time.Time) ([]Sample, error) { panic("boom") })
		s := newTestSet(t, flaky, bad)
		if st := s.Status(); st[0].LastError != "" || !st[0].LastOK.IsZero() {
			t.Fatalf("before Run: %+v", st[0])
		}
		runFor(t, s, &recordSink{}, 0, 2*time.Second+time.Millisecond)
		st := s.Status()
		if st[0].LastError != "device busy" || !st[0].LastOK.IsZero() {
			t.Fatalf("after two failures: %+v", st[0])
		}
		if !strings.Contains(st[1].LastError, "panic: boom") {
			t.Fatalf("panicking job: %+v", st[1])
		}
		runFor(t, s, &recordSink{}, 0, time.Second+time.Millisecond)
		if st := s.Status(); st[0].LastError != "" || st[0].LastOK.IsZero() {
			t.Fatalf("after a good collect: %+v", st[0])
		}
	})
}
