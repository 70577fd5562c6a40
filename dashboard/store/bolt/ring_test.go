package bolt

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"livedash/dashboard/store"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bbolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv("LIVEDASH_RING_CRASH_CHILD") != "" {
		crashChild()
		return
	}
	goleak.VerifyTestMain(m)
}

// openTest opens a store in a temporary directory and checks the file's
// consistency (CheckFile) when the test ends.
func openTest(tb testing.TB, opts Options) *Store {
	tb.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(tb.TempDir(), "ring.db")
	}
	s, err := Open(opts)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
		checkFile(tb, opts.Path)
	})
	return s
}

func checkFile(tb testing.TB, path string) {
	tb.Helper()
	for _, err := range CheckFile(path) {
		tb.Errorf("check %s: %v", path, err)
	}
}

func batch(topic string, v float64) store.Batch {
	return store.Batch{Topic: topic, Time: time.UnixMilli(1764255600123), Samples: []store.Sample{
		{Name: "x_ratio", Labels: map[string]string{"cpu": "total"}, Value: v},
	}}
}

func appendN(tb testing.TB, s *Store, topics []string, n int) []store.Frame {
	tb.Helper()
	var out []store.Frame
	for i := range n {
		fs, err := s.Append([]store.Batch{batch(topics[i%len(topics)], float64(i))})
		if err != nil {
			tb.Fatalf("append %d: %v", i, err)
		}
		out = append(out, fs...)
	}
	return out
}

// Several frames in one Append are stored with their own bytes (bbolt keeps
// a reference to every value until the commit).
func TestBatchValuesAreDistinct(t *testing.T) {
	s := openTest(t, Options{NoSync: true})
	var bs []store.Batch
	for i := range 50 {
		bs = append(bs, batch(fmt.Sprintf("topic%d", i%7), float64(i)))
	}
	fs, err := s.Append(bs)
	if err != nil {
		t.Fatal(err)
	}
	r := s.After(store.ID{Epoch: s.Epoch(), Seq: 0}, nil, store.Limits{})
	if len(r.Frames) != 50 {
		t.Fatalf("%d frames", len(r.Frames))
	}
	for i, f := range r.Frames {
		if !bytes.Equal(f.JSON, fs[i].JSON) || f.Topic != bs[i].Topic {
			t.Fatalf("frame %d: stored %s / %s, appended %s / %s", i, f.Topic, f.JSON, bs[i].Topic, fs[i].JSON)
		}
		if !bytes.Contains(f.JSON, []byte(fmt.Sprintf(`"value":%d}`, i))) {
			t.Fatalf("frame %d holds %s", i, f.JSON)
		}
	}
}

// The file stops growing under a steady load once the ring is full, because
// the pages of trimmed frames are reused (the suite checks the count).
func TestRetentionCountAndFileSize(t *testing.T) {
	s := openTest(t, Options{NoSync: true, MaxFrames: 2000})
	var sizes []int64
	for round := range 40 {
		var bs []store.Batch
		for i := range 100 {
			bs = append(bs, batch("t", float64(round*100+i)))
		}
		if _, err := s.Append(bs); err != nil {
			t.Fatal(err)
		}
		if s.Len() > 2000 {
			t.Fatalf("round %d: %d frames", round, s.Len())
		}
		sizes = append(sizes, s.Size())
	}
	if s.Len() != 2000 {
		t.Fatalf("len %d", s.Len())
	}
	// Once the ring is full (round 20), the file may grow by at most a few
	// pages of bookkeeping.
	if sizes[39] > sizes[24]+sizes[24]/4 {
		t.Fatalf("file kept growing: %d at round 24, %d at round 39", sizes[24], sizes[39])
	}
}

// A wall clock that jumps forward a day must not wipe the ring in one
// transaction (at most MaxAgeTrim frames go per append, so no append stalls
// the ingest for long); one that jumps back changes nothing about order.
func TestAgeTrimBoundedOnClockJump(t *testing.T) {
	now := time.Unix(1764255600, 0)
	clock := func() time.Time { return now }
	s := openTest(t, Options{NoSync: true, MaxAge: time.Hour, MaxAgeTrim: 50, Now: clock})
	for range 300 {
		if _, err := s.Append([]store.Batch{{Topic: "t"}}); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(-time.Hour) // back an hour
	if _, err := s.Append([]store.Batch{{Topic: "t"}}); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 301 || s.Head().Seq != 301 {
		t.Fatalf("after backward jump: len %d head %v", s.Len(), s.Head())
	}
	now = now.Add(25 * time.Hour) // forward a day
	for i := 1; i <= 3; i++ {
		if _, err := s.Append([]store.Batch{{Topic: "t"}}); err != nil {
			t.Fatal(err)
		}
		if want := 301 + i - 50*i; s.Len() != want {
			t.Fatalf("tick %d: len %d, want %d (at most 50 trimmed per tick)", i, s.Len(), want)
		}
	}
}

func TestReopenKeepsEpochAndSeq(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s, err := Open(Options{Path: path, MaxFrames: 10})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, []string{"a"}, 25)
	epoch, head := s.Epoch(), s.Head()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, Options{Path: path, MaxFrames: 10})
	if s.Epoch() != epoch || s.Head() != head || s.Len() != 10 {
		t.Fatalf("reopened: epoch %x head %v len %d; want %x %v 10", s.Epoch(), s.Head(), s.Len(), epoch, head)
	}
	fs := appendN(t, s, []string{"a"}, 1)
	if fs[0].ID.Seq != head.Seq+1 {
		t.Fatalf("seq after reopen %d", fs[0].ID.Seq)
	}
	if f, ok := s.Latest("a"); !ok || f.ID != fs[0].ID {
		t.Fatal("latest after reopen")
	}
}

// When retention by age empties the ring, seq still continues after a
// restart (the head is kept in the meta bucket).
func TestSeqContinuesWhenRingEmptied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	now := time.Unix(1764255600, 0)
	s, err := Open(Options{Path: path, MaxAge: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, []string{"a"}, 5)
	now = now.Add(time.Hour)
	if _, err := s.Append([]store.Batch{{Topic: "a", Time: now.Add(-2 * time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 0 || s.Head().Seq != 6 {
		t.Fatalf("len %d head %v", s.Len(), s.Head())
	}
	_ = s.Close()
	s = openTest(t, Options{Path: path})
	if s.Head().Seq != 6 || s.Len() != 0 || s.Check(store.ID{Epoch: s.Epoch(), Seq: 6}) != store.OK || s.Check(store.ID{Epoch: s.Epoch(), Seq: 5}) != store.Expired {
		t.Fatalf("reopened empty ring: head %v len %d", s.Head(), s.Len())
	}
}

// A file that cannot be read as a store (garbage, damaged pages or meta
// pages, frames without an epoch) is not fatal: it is moved aside, logged at
// ERROR, and a new epoch starts, so clients holding old cursors are reset
// instead of served frames nobody can vouch for.
func TestCorruptFilesAreQuarantined(t *testing.T) {
	good := func(t *testing.T, path string) uint64 {
		s, err := Open(Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, s, []string{"a"}, 500)
		e := s.Epoch()
		_ = s.Close()
		return e
	}
	cases := []struct {
		name       string
		prepare    func(t *testing.T, path string) (oldEpoch uint64)
		quarantine bool
	}{
		{"garbage", func(t *testing.T, path string) uint64 {
			return 0 * uint64(len(must(t, os.WriteFile(path, bytes.Repeat([]byte("garbage!"), 4096), 0o600))))
		}, true},
		{"short garbage", func(t *testing.T, path string) uint64 {
			return 0 * uint64(len(must(t, os.WriteFile(path, []byte("x"), 0o600))))
		}, true},
		{"zero length", func(t *testing.T, path string) uint64 {
			return 0 * uint64(len(must(t, os.WriteFile(path, nil, 0o600))))
		}, false},
		{"corrupt data page", func(t *testing.T, path string) uint64 {
			e := good(t, path)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Pages 0 and 1 are the meta pages (checksummed). Smash the
			// header of a live leaf page holding frames, which bbolt only
			// notices when it reads that page.
			pg := liveLeafPage(t, path)
			for i := pg * 4096; i < pg*4096+16; i++ {
				b[i] = 0xff
			}
			return e + uint64(len(must(t, os.WriteFile(path, b, 0o600))))*0
		}, true},
		{"both meta pages", func(t *testing.T, path string) uint64 {
			e := good(t, path)
			b, _ := os.ReadFile(path)
			for i := 16; i < 2*4096; i++ {
				b[i] ^= 0x5a
			}
			return e + uint64(len(must(t, os.WriteFile(path, b, 0o600))))*0
		}, true},
		{"no epoch", func(t *testing.T, path string) uint64 {
			db, err := bbolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			_ = db.Update(func(tx *bbolt.Tx) error {
				b, _ := tx.CreateBucket(bucketFrames)
				return b.Put(seqKey(7), appendRecord(nil, 1, "a", []byte(`{"x":1}`)))
			})
			_ = db.Close()
			return 0
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "r.db")
			old := tc.prepare(t, path)
			var logs bytes.Buffer
			s := openTest(t, Options{Path: path, Logger: slogTo(&logs)})
			if s.Epoch() == 0 || s.Epoch() == old {
				t.Fatalf("epoch %x (old %x): want a new one", s.Epoch(), old)
			}
			if s.Len() != 0 {
				t.Fatalf("new epoch with %d frames", s.Len())
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if tc.quarantine != (len(aside) == 1) {
				t.Fatalf("quarantined files %v, want quarantine=%v", aside, tc.quarantine)
			}
			if tc.quarantine && !strings.Contains(logs.String(), "level=ERROR") {
				t.Fatalf("no ERROR log line:\n%s", logs.String())
			}
			if _, err := s.Append([]store.Batch{batch("a", 1)}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// liveLeafPage returns the id of a reachable leaf page with many keys.
func liveLeafPage(t *testing.T, path string) int {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, PreLoadFreelist: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Info().PageSize != 4096 {
		t.Fatalf("page size %d", db.Info().PageSize)
	}
	found := -1
	_ = db.View(func(tx *bbolt.Tx) error {
		for id := 2; ; id++ {
			info, err := tx.Page(id)
			if err != nil || info == nil {
				return err
			}
			if info.Type == "leaf" && info.Count > 10 {
				found = id
			}
		}
	})
	if found < 0 {
		t.Fatal("no live leaf page")
	}
	return found
}

func must(t *testing.T, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return nil
}

// A store file held by another process fails Open quickly with ErrLocked,
// naming the file and the holder, instead of hanging.
func TestLockedStoreFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s := openTest(t, Options{Path: path})
	start := time.Now()
	_, err := Open(Options{Path: path, LockTimeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second open: %v", err)
	}
	if !strings.Contains(err.Error(), "held by") {
		t.Errorf("error does not name the holder: %v", err)
	}
	// A ceiling that tells the 300 ms lock timeout from waiting for the
	// holder: the holder never lets go.
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("took %v", d)
	}
	_ = s
}

// A store in a directory that cannot be written fails Open with the path and
// the reason, and is not mistaken for a corrupt file (nothing moved aside).
func TestUnwritableStore(t *testing.T) {
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		mountTmpfs(t, ro, "ro,size=1m")
	} else if err := os.Chmod(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(ro, "r.db")
	_, err := Open(Options{Path: path})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("open on unwritable dir: %v", err)
	}
	if aside, _ := filepath.Glob(path + ".corrupt-*"); len(aside) > 0 {
		t.Fatal("unwritable store was treated as corrupt")
	}
	t.Logf("error: %v", err)
}

// A full filesystem makes appends fail with a counted error, corrupts
// nothing, and appends work again once space returns.
func TestDiskFull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := Options{Path: filepath.Join(dir, "r.db"), MaxFrames: 1 << 30}
	filler := filepath.Join(dir, "filler")
	if os.Geteuid() == 0 {
		mountTmpfs(t, dir, "size=1m")
		t.Log("using a 1 MiB tmpfs")
	} else {
		opts.MaxSize = 512 << 10
		t.Log("not root: using bbolt MaxSize 512 KiB")
	}
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	var failed error
	var stored []store.Frame
	big := strings.Repeat("v", 2000)
	for i := 0; i < 2000 && failed == nil; i++ {
		fs, err := s.Append([]store.Batch{{Topic: "t", Samples: []store.Sample{{Name: "x", Labels: map[string]string{"p": big}, Value: float64(i)}}}})
		if err != nil {
			failed = err
			break
		}
		stored = append(stored, fs...)
		if os.Geteuid() == 0 && i == 50 {
			// Take most of the remaining space so the file hits the wall.
			_ = os.WriteFile(filler, bytes.Repeat([]byte{1}, 600<<10), 0o600)
		}
	}
	if failed == nil {
		t.Fatal("no append failed")
	}
	t.Logf("append failed as expected: %v", failed)
	if s.Err() == nil {
		t.Fatal("Err() nil after a failed append")
	}
	if got := testutil.ToFloat64(mustCollector(t, reg, "livedash_store_append_errors_total")); got < 1 {
		t.Fatalf("append errors counted %v", got)
	}
	head := s.Head()
	if head != stored[len(stored)-1].ID {
		t.Fatalf("head %v moved past the last stored frame %v", head, stored[len(stored)-1].ID)
	}
	// Space returns.
	_ = os.Remove(filler)
	if opts.MaxSize > 0 {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		opts.MaxSize = 0
		opts.Registerer = nil
		if s, err = Open(opts); err != nil {
			t.Fatal(err)
		}
	} else {
		// Trimming frees pages inside the file; shrink retention to make room.
		s.opts.MaxFrames = 10
	}
	if _, err := s.Append([]store.Batch{batch("t", 1)}); err != nil {
		t.Fatalf("append after space returned: %v", err)
	}
	if s.Err() != nil || s.Head().Seq != head.Seq+1 {
		t.Fatalf("after recovery: err %v head %v", s.Err(), s.Head())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, opts.Path)
}

func mustCollector(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			v := mf.GetMetric()[0].GetCounter().GetValue()
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: "x"}, func() float64 { return v })
		}
	}
	t.Fatalf("metric %s not registered", name)
	return nil
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openTest(t, Options{NoSync: true, Registerer: reg})
	appendN(t, s, []string{"a"}, 3)
	n, err := testutil.GatherAndCount(reg, "livedash_store_frames", "livedash_store_appended_frames_total", "livedash_store_append_duration_seconds")
	if err != nil || n != 3 {
		t.Fatalf("gathered %d series, %v", n, err)
	}
	if got := testutil.ToFloat64(mustCollector(t, reg, "livedash_store_appended_frames_total")); got != 3 {
		t.Fatalf("appended %v", got)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

func ExampleID_String() {
	fmt.Println(store.ID{Epoch: 0x9f2c41d07a3be511, Seq: 1042})
	// Output: 9f2c41d07a3be511-1042
}

// A file with many damaged pages is quarantined too, and the consistency
// check leaves no goroutine behind (goleak in TestMain).
func TestManyCorruptPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s, err := Open(Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 40 {
		var bs []store.Batch
		for i := range 100 {
			bs = append(bs, batch("a", float64(i)))
		}
		if _, err := s.Append(bs); err != nil {
			t.Fatal(err)
		}
	}
	old := s.Epoch()
	_ = s.Close()
	b, _ := os.ReadFile(path)
	for pg := 2; pg*4096 < len(b); pg++ {
		if pg%2 == 0 {
			for i := pg * 4096; i < pg*4096+16; i++ {
				b[i] = 0xee
			}
		}
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, Options{Path: path})
	if s.Epoch() == old || s.Len() != 0 {
		t.Fatalf("epoch %x len %d", s.Epoch(), s.Len())
	}
	if aside, _ := filepath.Glob(path + ".corrupt-*"); len(aside) != 1 {
		t.Fatalf("quarantined %v", aside)
	}
}

// An unparsable record among the newest frames is caught at start-up and the
// file quarantined; one that appears later is skipped by reads and counted.
func TestBadRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s, err := Open(Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, []string{"a"}, 10)
	putRaw := func(s *Store, seq uint64) {
		t.Helper()
		if err := s.db.Update(func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketFrames).Put(seqKey(seq), []byte{2, 0, 0})
		}); err != nil {
			t.Fatal(err)
		}
	}
	putRaw(s, 5)
	r := s.After(store.ID{Epoch: s.Epoch(), Seq: 0}, nil, store.Limits{})
	if r.Err != nil || len(r.Frames) != 9 || r.Next != s.Head() {
		t.Fatalf("read past a bad record: err %v, %d frames, next %v", r.Err, len(r.Frames), r.Next)
	}
	old := s.Epoch()
	_ = s.Close()
	s = openTest(t, Options{Path: path})
	if s.Epoch() == old {
		t.Fatal("a store with an unparsable record was reused")
	}
	if aside, _ := filepath.Glob(path + ".corrupt-*"); len(aside) != 1 {
		t.Fatalf("quarantined %v", aside)
	}
}

// Retention lowered between runs: the excess goes at start-up, in bounded
// transactions, and appends stay bounded by their own batch.
func TestRetentionLoweredAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s, err := Open(Options{Path: path, NoSync: true, MaxFrames: 30000})
	if err != nil {
		t.Fatal(err)
	}
	bs := make([]store.Batch, 1000)
	for i := range bs {
		bs[i] = batch("a", float64(i))
	}
	for range 25 {
		if _, err := s.Append(bs); err != nil {
			t.Fatal(err)
		}
	}
	head := s.Head()
	_ = s.Close()
	s = openTest(t, Options{Path: path, MaxFrames: 100})
	if s.Len() != 100 || s.Head() != head || s.Oldest().Seq != head.Seq-99 {
		t.Fatalf("len %d head %v oldest %v", s.Len(), s.Head(), s.Oldest())
	}
	r := s.After(store.ID{Epoch: s.Epoch(), Seq: head.Seq - 100}, nil, store.Limits{})
	if r.Reset != store.OK || len(r.Frames) != 100 {
		t.Fatalf("after trim: %q %d", r.Reset, len(r.Frames))
	}
}

// Check, bbolt's own cursor check, agrees with the Reset of a read after the
// same cursor (the suite checks the reads).
func TestCheck(t *testing.T) {
	s := openTest(t, Options{NoSync: true, MaxFrames: 200})
	appendN(t, s, []string{"cpu", "memory", "load"}, 300)
	for _, tc := range []struct {
		seq  uint64
		want store.Reason
	}{{0, store.Expired}, {99, store.Expired}, {100, store.OK}, {250, store.OK}, {300, store.OK}, {301, store.Future}} {
		cur := store.ID{Epoch: s.Epoch(), Seq: tc.seq}
		if got := s.Check(cur); got != tc.want || s.After(cur, nil, store.Limits{Frames: 1}).Reset != got {
			t.Errorf("Check(%v) = %q, want %q and the same as After's reset", cur, got, tc.want)
		}
	}
	if got := s.Check(store.ID{Epoch: s.Epoch() ^ 1, Seq: 250}); got != store.UnknownEpoch {
		t.Errorf("Check of a foreign epoch = %q", got)
	}
}
