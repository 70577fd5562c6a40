package bolt

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"livedash/dashboard/store"
)

// frame200 is a batch that encodes to about 200 bytes of JSON with two
// samples: a typical collector frame, the size ingest throughput is judged
// at.
func frame200(i int) store.Batch {
	return store.Batch{Topic: "network", Time: time.UnixMilli(1764255600123 + int64(i)), Samples: []store.Sample{
		{Name: "network_receive_bytes_per_second", Labels: map[string]string{"device": "eth0"}, Value: float64(i) * 1.5},
		{Name: "network_transmit_bytes_per_second", Labels: map[string]string{"device": "eth0"}, Value: float64(i) * 0.5},
	}}
}

// One commit (with fsync) per tick of 1,000 frames.
func BenchmarkAppendTick1000(b *testing.B) {
	s := openTest(b, Options{MaxFrames: 100000})
	bs := make([]store.Batch, 1000)
	for i := range bs {
		bs[i] = frame200(i)
	}
	fs, _ := s.Append(bs[:1])
	b.ReportMetric(float64(len(fs[0].JSON)), "bytes/frame")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Append(bs); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N*1000)/sec, "frames/s")
	b.ReportMetric(float64(b.N*2000)/sec, "samples/s")
}

// One commit per frame, for contrast: bound by fsync.
func BenchmarkAppendPerFrame(b *testing.B) {
	s := openTest(b, Options{MaxFrames: 100000})
	bt := []store.Batch{frame200(1)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Append(bt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

func fillRing(b *testing.B, path string, n int) *Store {
	b.Helper()
	s, err := Open(Options{Path: path, MaxFrames: n, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	bs := make([]store.Batch, 1000)
	for i := 0; i < n; i += len(bs) {
		for j := range bs {
			bs[j] = frame200(i + j)
		}
		if _, err := s.Append(bs); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// Resume cost must not grow with the ring: 1,000 frames after a cursor in
// the middle of rings of 10k and 100k frames.
func BenchmarkAfter1000(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("ring=%d", n), func(b *testing.B) {
			s := fillRing(b, filepath.Join(b.TempDir(), "r.db"), n)
			defer s.Close()
			cur := store.ID{Epoch: s.Epoch(), Seq: s.Head().Seq - uint64(n/2)}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				r := s.After(cur, nil, store.Limits{Frames: 1000})
				if len(r.Frames) != 1000 {
					b.Fatalf("%d frames", len(r.Frames))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/frame")
		})
	}
}

// Start-up with a full 100,000-frame ring, Tx.Check included.
func BenchmarkOpen100k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "r.db")
	s := fillRing(b, path, 100000)
	_ = s.Close()
	b.ResetTimer()
	for b.Loop() {
		s, err := Open(Options{Path: path, MaxFrames: 100000})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = s.Close()
		b.StartTimer()
	}
}
