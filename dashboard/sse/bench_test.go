package sse

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"livedash/dashboard/hub"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

// countingRW is an in-memory stream sink: it discards bytes, counts writes
// and signals when the count reaches target.
type countingRW struct {
	hdr    http.Header
	writes *atomic.Int64
	bytes  *atomic.Int64
	target *atomic.Int64
	done   chan struct{}
}

func (w *countingRW) Header() http.Header { return w.hdr }
func (w *countingRW) WriteHeader(int)     {}
func (w *countingRW) FlushError() error   { return nil }

// SetWriteDeadline is there because net/http's writer has it; without it
// http.ResponseController allocates an error per write.
func (w *countingRW) SetWriteDeadline(time.Time) error { return nil }
func (w *countingRW) Write(b []byte) (int, error) {
	w.bytes.Add(int64(len(b)))
	if w.writes.Add(1) == w.target.Load() {
		w.done <- struct{}{}
	}
	return len(b), nil
}

func benchStore(b *testing.B) *bolt.Store {
	st, err := bolt.Open(bolt.Options{Path: filepath.Join(b.TempDir(), "store.db"), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// syntheticFrames returns n frames of about size bytes of JSON starting at seq.
func syntheticFrames(epoch, seq uint64, n, size int) []store.Frame {
	fs := make([]store.Frame, n)
	pad := strings.Repeat("x", size-60)
	for i := range fs {
		id := store.ID{Epoch: epoch, Seq: seq + uint64(i)}
		fs[i] = store.Frame{ID: id, Topic: "synthetic", JSON: fmt.Appendf(nil, `{"id":"%s","topic":"synthetic","ts":1,"p":"%s"}`, id, pad)}
	}
	return fs
}

// BenchmarkPublishFanout: one op = one Publish of 8 frames of 500 B and its
// delivery to every one of N streams (each as ONE coalesced write).
// ns/delivery = server time per stream per tick, without sockets.
func BenchmarkPublishFanout(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			st := benchStore(b)
			cfg := testConfig()
			h := New(hub.New(st, cfg, hub.Options{}), Options{})
			ctx, cancel := context.WithCancel(context.Background())
			var writes, bytes, target atomic.Int64
			done := make(chan struct{}, 1)
			target.Store(int64(n)) // the hellos
			for range n {
				w := &countingRW{hdr: http.Header{}, writes: &writes, bytes: &bytes, target: &target, done: done}
				r := httptest.NewRequest(http.MethodGet, "/api/v1/stream", nil).WithContext(ctx)
				go h.ServeHTTP(w, r)
			}
			<-done
			epoch, seq := st.Epoch(), uint64(1)
			ticks := make([][]store.Frame, b.N)
			for i := range ticks {
				ticks[i] = syntheticFrames(epoch, seq, 8, 500)
				seq += 8
			}
			bytes.Store(0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				target.Store(int64(n) * int64(i+2))
				h.Publish(ticks[i])
				<-done
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			b.ReportMetric(float64(bytes.Load())/float64(b.N*n), "B/delivery")
			cancel()
			sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer scancel()
			if err := h.Shutdown(sctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func BenchmarkEncodeFrame(b *testing.B) {
	f := syntheticFrames(1, 1, 1, 500)[0]
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for range b.N {
		buf = appendEvent(buf[:0], f.ID, f.JSON)
	}
}
