package bolt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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
// consistency with bbolt's Tx.Check when the test ends.
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
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		tb.Errorf("reopen for check: %v", err)
		return
	}
	defer db.Close()
	_ = db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			tb.Errorf("tx.Check: %v", err)
		}
		return nil
	})
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

func TestFrameJSON(t *testing.T) {
	s := openTest(t, Options{NoSync: true})
	evil := "<img src=x onerror=alert(1)>\n\ndata: x\r\u2028\u202e\xff"
	fs, err := s.Append([]store.Batch{{Topic: "t", Time: time.UnixMilli(5), Samples: []store.Sample{
		{Name: evil, Labels: map[string]string{"b": evil, "a": "1"}, Value: 0.121},
		{Name: "nan", Value: math.NaN()},
		{Name: "inf", Value: math.Inf(1)},
		{Name: "big", Value: 1e21},
		{Name: "small", Value: 1e-9},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	js := fs[0].JSON
	if bytes.ContainsAny(js, "\n\r<>") || bytes.Contains(js, []byte("\u2028")) {
		t.Fatalf("unescaped bytes in %s", js)
	}
	var got struct {
		ID      string         `json:"id"`
		Topic   string         `json:"topic"`
		TS      int64          `json:"ts"`
		Samples []store.Sample `json:"samples"`
	}
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	if got.ID != fs[0].ID.String() || got.Topic != "t" || got.TS != 5 || len(got.Samples) != 3 {
		t.Fatalf("decoded %+v from %s", got, js)
	}
	wantName := strings.ToValidUTF8(evil, "\ufffd")
	if got.Samples[0].Name != wantName || got.Samples[0].Labels["b"] != wantName || got.Samples[0].Value != 0.121 {
		t.Fatalf("sample 0 = %+v", got.Samples[0])
	}
	// Same bytes as encoding/json for the numbers.
	for i, want := range []string{`"value":0.121`, `"value":1e+21`, `"value":1e-9`} {
		if !bytes.Contains(js, []byte(want)) {
			t.Errorf("%d: %s lacks %s", i, js, want)
		}
	}
	if !bytes.Contains(js, []byte(`"labels":{"a":"1","b":`)) {
		t.Errorf("labels not sorted: %s", js)
	}
}

// The replay contract of DESIGN §3: resuming from every k returns exactly the
// frames after k, in order; from the head nothing; from a cursor that cannot be
// honoured a reason and never frames.
func TestReplayContract(t *testing.T) {
	const n = 300
	s := openTest(t, Options{NoSync: true, MaxFrames: 200})
	all := appendN(t, s, []string{"cpu", "memory", "load"}, n)
	retained := all[n-200:]
	if s.Len() != 200 || s.Oldest() != retained[0].ID || s.Head() != all[n-1].ID {
		t.Fatalf("bounds: len %d oldest %v head %v", s.Len(), s.Oldest(), s.Head())
	}
	for k := retained[0].ID.Seq - 1; k <= s.Head().Seq; k++ {
		r := s.After(store.ID{Epoch: s.Epoch(), Seq: k}, nil, store.Limits{})
		if r.Reset != store.OK || r.Err != nil {
			t.Fatalf("after %d: reset %q err %v", k, r.Reset, r.Err)
		}
		want := all[k:]
		if len(r.Frames) != len(want) {
			t.Fatalf("after %d: %d frames, want %d", k, len(r.Frames), len(want))
		}
		for i := range want {
			if r.Frames[i].ID != want[i].ID || !bytes.Equal(r.Frames[i].JSON, want[i].JSON) {
				t.Fatalf("after %d: frame %d is %v, want %v", k, i, r.Frames[i].ID, want[i].ID)
			}
		}
		if r.Next != s.Head() || r.More {
			t.Fatalf("after %d: next %v more %v", k, r.Next, r.More)
		}
	}
	// Paging with a limit visits everything exactly once.
	var paged []store.ID
	cur := store.ID{Epoch: s.Epoch(), Seq: retained[0].ID.Seq - 1}
	for {
		r := s.After(cur, nil, store.Limits{Frames: 7})
		for _, f := range r.Frames {
			paged = append(paged, f.ID)
		}
		cur = r.Next
		if !r.More {
			break
		}
	}
	if len(paged) != 200 || paged[0] != retained[0].ID || paged[199] != s.Head() {
		t.Fatalf("paged %d frames", len(paged))
	}
	for _, tc := range []struct {
		name string
		id   store.ID
		want store.Reason
	}{
		{"expired", store.ID{Epoch: s.Epoch(), Seq: retained[0].ID.Seq - 2}, store.Expired},
		{"expired zero", store.ID{Epoch: s.Epoch(), Seq: 0}, store.Expired},
		{"future", store.ID{Epoch: s.Epoch(), Seq: s.Head().Seq + 1}, store.Future},
		{"foreign epoch", store.ID{Epoch: s.Epoch() ^ 1, Seq: 250}, store.UnknownEpoch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Check(tc.id); got != tc.want {
				t.Errorf("Check = %q, want %q", got, tc.want)
			}
			r := s.After(tc.id, nil, store.Limits{})
			if r.Reset != tc.want || len(r.Frames) != 0 {
				t.Errorf("After: reset %q, %d frames; want %q and none", r.Reset, len(r.Frames), tc.want)
			}
		})
	}
}

func TestAfterFilterAndLimits(t *testing.T) {
	s := openTest(t, Options{NoSync: true})
	all := appendN(t, s, []string{"cpu", "memory", "load", "disk"}, 400)
	onlyLoad := func(t string) bool { return t == "load" }
	r := s.After(store.ID{Epoch: s.Epoch(), Seq: 0}, onlyLoad, store.Limits{})
	if len(r.Frames) != 100 || r.Next != s.Head() {
		t.Fatalf("filter: %d frames next %v", len(r.Frames), r.Next)
	}
	for _, f := range r.Frames {
		if f.Topic != "load" {
			t.Fatalf("topic %q", f.Topic)
		}
	}
	// A scan bound stops early but Next says how far it looked.
	r = s.After(store.ID{Epoch: s.Epoch(), Seq: 0}, onlyLoad, store.Limits{Scan: 10})
	if !r.More || r.Next.Seq != 10 || len(r.Frames) != 2 {
		t.Fatalf("scan bound: more %v next %v frames %d", r.More, r.Next, len(r.Frames))
	}
	// A byte bound returns at least one frame.
	r = s.After(store.ID{Epoch: s.Epoch(), Seq: 0}, nil, store.Limits{Bytes: 1})
	if len(r.Frames) != 1 || !r.More || r.Next != all[0].ID {
		t.Fatalf("byte bound: %d frames more %v next %v", len(r.Frames), r.More, r.Next)
	}
	if f, ok := s.Latest("disk"); !ok || f.ID != all[399].ID {
		t.Fatalf("latest disk = %v %v", f.ID, ok)
	}
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

func TestEmptyStore(t *testing.T) {
	s := openTest(t, Options{NoSync: true})
	if s.Head().Seq != 0 || s.Len() != 0 || s.Oldest() != s.Head() {
		t.Fatalf("empty: head %v oldest %v len %d", s.Head(), s.Oldest(), s.Len())
	}
	r := s.After(s.Head(), nil, store.Limits{})
	if r.Reset != store.OK || len(r.Frames) != 0 || r.Next != s.Head() {
		t.Fatalf("empty after: %+v", r)
	}
}

func TestCommitHookAndChanged(t *testing.T) {
	s := openTest(t, Options{NoSync: true})
	var got []store.ID
	s.OnCommit(func(fs []store.Frame) {
		for _, f := range fs {
			got = append(got, f.ID)
			// Committed before the hook runs: a read sees it.
			if r := s.After(store.ID{Epoch: s.Epoch(), Seq: f.ID.Seq - 1}, nil, store.Limits{}); len(r.Frames) == 0 {
				t.Errorf("frame %v not readable in hook", f.ID)
			}
		}
	})
	ch := s.Changed()
	if _, err := s.Append([]store.Batch{batch("a", 1), batch("b", 2)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed by commit")
	}
	if len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 2 {
		t.Fatalf("hook saw %v", got)
	}
}

// After every commit frames ≤ cap, and the file stops growing under a steady
// load because trimmed pages are reused.
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

// FAULTS row 25: a wall clock that jumps forward a day must not wipe the ring
// in one transaction; one that jumps back changes nothing about order.
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

// FAULTS row 21.
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

// FAULTS row 22.
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
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	_ = s
}

// FAULTS row 23.
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

// FAULTS row 20: a full filesystem makes appends fail with a counted error,
// corrupts nothing, and appends work again once space returns.
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

// AfterView sees what After returns, without copies, and Until bounds the
// read like a lower head while cursor checks keep using the real one.
func TestAfterViewMatchesAfter(t *testing.T) {
	s := openTest(t, Options{NoSync: true, MaxFrames: 200})
	all := appendN(t, s, []string{"cpu", "memory", "load"}, 300)
	for _, lim := range []store.Limits{{}, {Frames: 7}, {Bytes: 1}, {Scan: 10}} {
		for k := all[99].ID.Seq; k <= s.Head().Seq; k += 13 {
			cur := store.ID{Epoch: s.Epoch(), Seq: k}
			want := s.After(cur, func(t string) bool { return t != "memory" }, lim)
			var seqs []uint64
			got := s.AfterView(cur, func(t []byte) bool { return string(t) != "memory" }, lim, func(seq uint64, _ int64, _, js []byte) {
				if !bytes.Equal(js, all[seq-1].JSON) {
					t.Fatalf("seq %d: json differs", seq)
				}
				seqs = append(seqs, seq)
			})
			if got.Next != want.Next || got.More != want.More || got.Head != want.Head || got.Oldest != want.Oldest ||
				got.Reset != want.Reset || got.Err != nil || len(seqs) != len(want.Frames) {
				t.Fatalf("after %d %+v: view %+v (%d frames), want %+v (%d)", k, lim, got, len(seqs), want, len(want.Frames))
			}
			for i := range seqs {
				if seqs[i] != want.Frames[i].ID.Seq {
					t.Fatalf("after %d: frame %d is %d, want %v", k, i, seqs[i], want.Frames[i].ID)
				}
			}
		}
	}
	until := all[250].ID.Seq
	var last uint64
	r := s.AfterView(all[200].ID, nil, store.Limits{Until: until}, func(seq uint64, _ int64, _, _ []byte) { last = seq })
	if last != until || r.Next.Seq != until || r.More || r.Head != s.Head() {
		t.Fatalf("until: last %d next %v more %v head %v", last, r.Next, r.More, r.Head)
	}
	r = s.AfterView(all[200].ID, nil, store.Limits{Until: until, Frames: 50}, func(uint64, int64, []byte, []byte) {})
	if r.Next.Seq != until || r.More {
		t.Fatalf("until at the frame limit: next %v more %v", r.Next, r.More)
	}
	called := false
	r = s.AfterView(store.ID{Epoch: s.Epoch(), Seq: all[50].ID.Seq}, nil, store.Limits{Until: until}, func(uint64, int64, []byte, []byte) { called = true })
	if r.Reset != store.Expired || called {
		t.Fatalf("expired cursor: reset %q called %v", r.Reset, called)
	}
	r = s.AfterView(store.ID{Epoch: s.Epoch(), Seq: s.Head().Seq + 1}, nil, store.Limits{Until: until}, func(uint64, int64, []byte, []byte) { called = true })
	if r.Reset != store.Future || called {
		t.Fatalf("future cursor: reset %q called %v", r.Reset, called)
	}
}
