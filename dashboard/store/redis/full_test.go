package redis

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"livedash/dashboard/store"
	"livedash/dashboard/store/redis/redistest"
)

// Redis full, with the settings of packaging/redis/livedash.conf
// (maxmemory-policy noeviction): appends fail with Redis's OOM error and are
// counted, Err reports it (the instance is unready), nothing of the ring
// changes (no seq is spent, nothing evicted), reads go on; once Redis has room, appends continue with the next seq of
// the same epoch and the hooks see every frame once, in order.
func TestRedisFullNoEviction(t *testing.T) {
	conf, err := filepath.Abs("../../../packaging/redis/livedash.conf")
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t, redistest.Options{ConfigFile: conf})
	if got, err := srv.Do("CONFIG", "GET", "maxmemory-policy"); err != nil || got != "maxmemory-policy\nnoeviction" {
		t.Fatalf("maxmemory-policy: %q, %v", got, err)
	}
	reg := prometheus.NewRegistry()
	s := openTest(t, srv, Options{Node: "a", Registerer: reg})
	rec := record(s)
	for i := range 3 {
		if _, err := s.Append([]store.Batch{tick("a", i)}); err != nil {
			t.Fatal(err)
		}
	}
	epoch := s.Epoch()
	xlen := func() string {
		n, err := srv.Do("XLEN", s.k.frames)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := xlen()

	// Full: any write is refused.
	if _, err := srv.Do("CONFIG", "SET", "maxmemory", "1"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		fs, err := s.Append([]store.Batch{tick("a", 10+i)})
		if err == nil || len(fs) != 0 {
			t.Fatalf("append into a full Redis: %d frames, %v", len(fs), err)
		}
		if !strings.Contains(err.Error(), "OOM") {
			t.Fatalf("append into a full Redis: %v; want Redis's OOM error", err)
		}
	}
	if n := testutil.ToFloat64(mustCollector(t, reg, "livedash_store_append_errors_total")); n != 5 {
		t.Fatalf("append errors counted %v, want 5", n)
	}
	if s.Err() == nil {
		t.Fatal("Err() nil while every append fails (readiness)")
	}
	if got := xlen(); got != before {
		t.Fatalf("the stream went from %s to %s entries while Redis was full", before, got)
	}
	if h := s.Head(); h != (store.ID{Epoch: epoch, Seq: 3}) {
		t.Fatalf("head %v while full, want seq 3", h)
	}
	if r := s.After(store.ID{Epoch: epoch, Seq: 0}, nil, store.Limits{Frames: 10}); r.Err != nil || r.Reset != "" || len(r.Frames) != 3 {
		t.Fatalf("read while full: %d frames, %v %q", len(r.Frames), r.Err, r.Reset)
	}

	// Room again: the next seq of the same epoch.
	if _, err := srv.Do("CONFIG", "SET", "maxmemory", "0"); err != nil {
		t.Fatal(err)
	}
	fs, err := s.Append([]store.Batch{tick("a", 20)})
	if err != nil {
		t.Fatal(err)
	}
	if fs[0].ID != (store.ID{Epoch: epoch, Seq: 4}) {
		t.Fatalf("first frame after Redis had room %v, want seq 4 of epoch %016x", fs[0].ID, epoch)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err() after a successful append: %v", err)
	}
	got, _ := rec.snapshot()
	if len(got) != 4 {
		t.Fatalf("hooks saw %d frames, want 4", len(got))
	}
	for i, f := range got {
		if f.ID.Seq != uint64(i)+1 {
			t.Fatalf("hooks saw %v at %d", f.ID, i)
		}
	}
}
