package sse

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// BenchmarkPublishFanoutH2: BenchmarkPublishFanout over real HTTP/2 (h2c
// on loopback, Go's client reading every stream): one op = one Publish of 8
// frames of 500 B and their arrival at every one of N streams, each stream
// carried by net/http's HTTP/2 server (write, flush, write deadline).
// Client time is included: ns/delivery and cpu-ns/delivery (the process's
// CPU time, which a loaded machine disturbs less than the elapsed time)
// compare server changes, they are not the server's cost alone.
func BenchmarkPublishFanoutH2(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			st := benchStore(b)
			h := New(hub.New(st, testConfig(), hub.Options{}), Options{})
			srv := httptest.NewUnstartedServer(h)
			srv.Config.Protocols = new(http.Protocols)
			srv.Config.Protocols.SetHTTP1(true)
			srv.Config.Protocols.SetUnencryptedHTTP2(true)
			srv.Start()
			var p http.Protocols
			p.SetUnencryptedHTTP2(true)
			tr := &http.Transport{Protocols: &p}
			ctx, cancel := context.WithCancel(context.Background())
			// Each client signals its hello, then every 8 frames.
			done := make(chan struct{}, n)
			var readers sync.WaitGroup
			for range n {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				if resp.ProtoMajor != 2 {
					b.Fatalf("answered over %s", resp.Proto)
				}
				readers.Go(func() {
					defer resp.Body.Close()
					br := bufio.NewReader(resp.Body)
					frames := 0
					for {
						l, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						switch {
						case string(l) == "event: hello\n":
							done <- struct{}{}
						case string(l) == "event: frame\n":
							if frames++; frames%8 == 0 {
								done <- struct{}{}
							}
						}
					}
				})
			}
			for range n {
				<-done
			}
			epoch, seq := st.Epoch(), uint64(1)
			ticks := make([][]store.Frame, b.N)
			for i := range ticks {
				ticks[i] = syntheticFrames(epoch, seq, 8, 500)
				seq += 8
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU(b)
			for i := range b.N {
				h.Publish(ticks[i])
				for range n {
					<-done
				}
			}
			b.StopTimer()
			cpu = processCPU(b) - cpu
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "cpu-ns/delivery")
			// The hub ends the streams (their clients read to the end), then
			// the clients go.
			sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer scancel()
			if err := h.Shutdown(sctx); err != nil {
				b.Fatal(err)
			}
			readers.Wait()
			cancel()
			tr.CloseIdleConnections()
			srv.Close()
		})
	}
}

// processCPU is the CPU time, user and system, this process has used so
// far.
func processCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkEncodeFrame(b *testing.B) {
	f := syntheticFrames(1, 1, 1, 500)[0]
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for range b.N {
		buf = appendEvent(buf[:0], f.ID, f.JSON)
	}
}
