package redis

import (
	"testing"

	"livedash/dashboard/store/redis/redistest"
)

// BenchmarkAppendTick with the persistence packaging/redis/livedash.conf
// recommends: every write in the append-only file, fsynced before Redis
// answers (appendonly yes, appendfsync always). The cost of a frame any
// client has seen surviving a crash of Redis.
func BenchmarkAppendTickAOF(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{Persist: true})
	s := openTest(b, srv, Options{MaxFrames: 100000})
	tick := typicalTick(1)
	if _, err := s.Append(tick); err != nil {
		b.Fatal(err)
	}
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
