package redis

import (
	"fmt"
	"testing"
	"time"

	"livedash/dashboard/store"
	"livedash/dashboard/store/redis/redistest"
)

// typicalTick is one collector tick: 8 topics of 50 samples each, labelled
// like host metrics.
func typicalTick(i int) []store.Batch {
	bs := make([]store.Batch, 8)
	for t := range bs {
		samples := make([]store.Sample, 50)
		for j := range samples {
			samples[j] = store.Sample{
				Name:   fmt.Sprintf("metric_%d_bytes", j%10),
				Labels: map[string]string{"device": fmt.Sprintf("dev%d", j), "mode": "user"},
				Value:  float64(i*j) * 1.25,
			}
		}
		bs[t] = store.Batch{Topic: fmt.Sprintf("topic%d", t), Time: time.UnixMilli(1764255600123 + int64(i)), Samples: samples}
	}
	return bs
}

// One Append per tick of 8 frames × 50 samples: one script call and the
// wait for the tail to deliver the frames here, as collectors see it.
func BenchmarkAppendTick(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	s := openTest(b, srv, Options{MaxFrames: 100000})
	tick := typicalTick(1)
	fs, err := s.Append(tick)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(fs[0].JSON)), "bytes/frame")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Append(tick); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N*8)/sec, "frames/s")
	b.ReportMetric(float64(b.N*8*50)/sec, "samples/s")
}

// frame200 is the bbolt benchmarks' frame: about 200 bytes of JSON with two
// samples, so the replay figures compare.
func frame200(i int) store.Batch {
	return store.Batch{Topic: "network", Time: time.UnixMilli(1764255600123 + int64(i)), Samples: []store.Sample{
		{Name: "network_receive_bytes_per_second", Labels: map[string]string{"device": "eth0"}, Value: float64(i) * 1.5},
		{Name: "network_transmit_bytes_per_second", Labels: map[string]string{"device": "eth0"}, Value: float64(i) * 0.5},
	}}
}

func fillRing(b *testing.B, s *Store, n int) {
	b.Helper()
	bs := make([]store.Batch, 1000)
	for i := 0; i < n; i += len(bs) {
		for j := range bs {
			bs[j] = frame200(i + j)
		}
		if _, err := s.Append(bs); err != nil {
			b.Fatal(err)
		}
	}
}

// Replay of 1,000 frames after a cursor in the middle of rings of 10k and
// 100k frames (After copies them out, as the poll API does; AfterView hands
// views to a callback, as the stream's replay does). The cost must not grow
// with the ring.
func BenchmarkAfter1000(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	for _, n := range []int{10000, 100000} {
		s := openTest(b, srv, Options{MaxFrames: n, KeyPrefix: fmt.Sprintf("ring%d", n)})
		fillRing(b, s, n)
		cur := store.ID{Epoch: s.Epoch(), Seq: s.Head().Seq - uint64(n/2)}
		b.Run(fmt.Sprintf("ring=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := s.After(cur, nil, store.Limits{Frames: 1000})
				if len(r.Frames) != 1000 {
					b.Fatalf("%d frames, %v %q", len(r.Frames), r.Err, r.Reset)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/frame")
		})
		b.Run(fmt.Sprintf("view/ring=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got := 0
				r := s.AfterView(cur, nil, store.Limits{Frames: 1000}, func(uint64, int64, []byte, []byte) { got++ })
				if got != 1000 || r.Err != nil {
					b.Fatalf("%d frames, %v", got, r.Err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/frame")
		})
	}
}
