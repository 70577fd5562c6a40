package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newTestClient() *client {
	st := &atomic.Pointer[stats]{}
	st.Store(newStats())
	return &client{st: st}
}

// The parser counts frames, gaps, duplicates and resets from the IDs,
// takes the resume cursor from dispatched events only, and reads the
// latency from "ts", with the event split across small reads.
func TestClientRead(t *testing.T) {
	ts := time.Now().Add(-50 * time.Millisecond).UnixMilli()
	frame := func(id string) string {
		return fmt.Sprintf("id: %s\nevent: frame\ndata: {\"id\":%q,\"topic\":\"t\",\"ts\":%d,\"samples\":[]}\n\n", id, id, ts)
	}
	stream := "retry: 1000\nevent: hello\ndata: {\"epoch\":\"e\"}\n\n" +
		": hb e-1 123\n\n" +
		frame("e-1") + frame("e-2") + frame("e-5") + // gap of 2
		frame("e-5") + // duplicate
		"event: reset\ndata: {\"reason\":\"too_far\"}\n\n" +
		frame("e-9") + // after a reset: no gap
		frame("f-1") + // new epoch: no gap, no duplicate
		"id: e-77\nevent: frame\n" // not dispatched: no blank line
	for _, size := range []int{16, 4096} {
		c := newTestClient()
		err := c.read(bufio.NewReaderSize(&slowReader{s: stream, n: 7}, size))
		if err != io.EOF {
			t.Fatalf("read: %v", err)
		}
		st := c.st.Load()
		if st.frames.Load() != 6 || st.gaps.Load() != 2 || st.dups.Load() != 1 || st.resets.Load() != 1 || st.noTS.Load() != 0 {
			t.Fatalf("buffer %d: frames %d gaps %d dups %d resets %d noTS %d", size,
				st.frames.Load(), st.gaps.Load(), st.dups.Load(), st.resets.Load(), st.noTS.Load())
		}
		if string(c.lastID) != "f-1" || c.seq.Load() != 1 || c.epoch != "f" {
			t.Fatalf("buffer %d: lastID %q seq %d epoch %q", size, c.lastID, c.seq.Load(), c.epoch)
		}
		if p := st.percentile(.5); p < 50*time.Millisecond || p > 10*time.Second {
			t.Fatalf("buffer %d: latency %v, want ≥ 50ms", size, p)
		}
	}
}

// slowReader returns at most n bytes per Read.
type slowReader struct {
	s string
	n int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.s)
	r.s = r.s[k:]
	return k, nil
}

// FuzzClientRead: any byte stream is parsed without panicking, and the
// counters stay consistent (every gap or duplicate belongs to a frame).
func FuzzClientRead(f *testing.F) {
	f.Add("id: e-1\nevent: frame\ndata: {\"ts\":1}\n\nid: e-3\ndata: {\"ts\":2}\n\n")
	f.Add("event: reset\ndata: x\n\nid: 18446744073709551615\ndata: \"ts\":99999999999999999999\n\n")
	f.Add(": hb\n\nid:\nevent:\ndata:\n\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		c := newTestClient()
		_ = c.read(bufio.NewReaderSize(strings.NewReader(in), 16))
		st := c.st.Load()
		if st.frames.Load() < st.dups.Load() || st.frames.Load() < 0 || st.noTS.Load() > st.frames.Load() {
			t.Fatalf("frames %d dups %d noTS %d", st.frames.Load(), st.dups.Load(), st.noTS.Load())
		}
	})
}
