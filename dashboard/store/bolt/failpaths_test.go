package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"livedash/dashboard/store"

	"github.com/prometheus/client_golang/prometheus"
	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// rawKeys returns the seqs of the records in the frames bucket, read with
// bbolt directly (not through the store's bounds).
func rawKeys(t *testing.T, s *Store) []uint64 {
	t.Helper()
	var out []uint64
	if err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketFrames).ForEach(func(k, _ []byte) error {
			out = append(out, binary.BigEndian.Uint64(k))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// counter is the value of the store's counter name in reg (0 when it has no
// sample yet).
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// Append's topic guard (a topic longer than MaxTopicLen): the record keeps
// a topic's length in one byte, so a longer topic would be stored as a
// shorter one with the rest spilled into the JSON. It is refused with
// ErrTopic before any write: no record, head and Err unchanged, no append
// error counted, and the file checks clean. A topic of exactly MaxTopicLen
// bytes round-trips through the record.
func TestAppendTopicTooLongWritesNoRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	reg := prometheus.NewRegistry()
	s, err := Open(Options{Path: path, NoSync: true, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, []string{"a"}, 2)
	head := s.Head()

	// What the guard prevents: a 256-byte topic's length byte wraps to 0.
	long := strings.Repeat("t", store.MaxTopicLen+1)
	if _, topic, _, err := parseRecord(appendRecord(nil, 1, long, []byte(`{"x":1}`))); err != nil || len(topic) == len(long) {
		t.Fatalf("a %d-byte topic in a record parses back as %d bytes (err %v): the guard would be moot", len(long), len(topic), err)
	}

	for _, topics := range [][]string{{long}, {"a", long}, {long, "b", "c"}} {
		bs := make([]store.Batch, len(topics))
		for i, tp := range topics {
			bs[i] = batch(tp, float64(i))
		}
		fs, err := s.Append(bs)
		if !errors.Is(err, store.ErrTopic) || fs != nil {
			t.Fatalf("append of topics %d bytes long: %d frames, err %v; want ErrTopic", len(topics[0]), len(fs), err)
		}
		if !strings.Contains(err.Error(), "topic") {
			t.Errorf("error %q does not say what was wrong", err)
		}
	}
	if got := rawKeys(t, s); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("records after refused appends: %v, want [1 2]", got)
	}
	if s.Head() != head || s.Err() != nil {
		t.Fatalf("after refused appends: head %v (want %v), Err %v", s.Head(), head, s.Err())
	}
	if n := counter(t, reg, "livedash_store_append_errors_total"); n != 0 {
		t.Fatalf("append errors counted %v for refused topics: a bad topic says nothing about the store", n)
	}

	max := strings.Repeat("m", store.MaxTopicLen)
	fs, err := s.Append([]store.Batch{batch(max, 1)})
	if err != nil || fs[0].ID.Seq != head.Seq+1 {
		t.Fatalf("append with a %d-byte topic: %v", len(max), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path)
	s = openTest(t, Options{Path: path})
	r := s.After(store.ID{Epoch: s.Epoch(), Seq: head.Seq}, nil, store.Limits{})
	if r.Err != nil || len(r.Frames) != 1 || r.Frames[0].Topic != max || !bytes.Equal(r.Frames[0].JSON, fs[0].JSON) {
		t.Fatalf("the %d-byte topic read back after reopening: err %v, %d frames", len(max), r.Err, len(r.Frames))
	}
}

// Append after Close (the isClosed check): ErrClosed, nothing written (the
// file reopens with the same head and checks clean), Err reports ErrClosed,
// and reads of a closed store fail with an error instead of panicking.
func TestAppendAfterCloseWritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s, err := Open(Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, []string{"a"}, 3)
	head := s.Head()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fs, err := s.Append([]store.Batch{batch("a", 1)}); !errors.Is(err, store.ErrClosed) || fs != nil {
		t.Fatalf("append after close: %d frames, %v; want ErrClosed", len(fs), err)
	}
	if !errors.Is(s.Err(), store.ErrClosed) {
		t.Fatalf("Err() after close = %v", s.Err())
	}
	if r := s.After(store.ID{Epoch: s.Epoch()}, nil, store.Limits{}); r.Err == nil || len(r.Frames) != 0 {
		t.Fatalf("After on a closed store: err %v, %d frames", r.Err, len(r.Frames))
	}
	if _, err := s.ScanView(0, 0, func(uint64, int64, []byte, []byte) bool { return true }); err == nil {
		t.Fatal("ScanView on a closed store: no error")
	}
	checkFile(t, path)
	s = openTest(t, Options{Path: path})
	if s.Head() != head || s.Len() != 3 {
		t.Fatalf("reopened after an append after close: head %v len %d, want %v 3", s.Head(), s.Len(), head)
	}
}

// Close twice (the closed check in Close): the second returns nil and does
// not unregister the metrics again; the first unregistered them, so a store
// opened next on the same registry registers its own without a panic.
func TestDoubleCloseUnregistersOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	reg := prometheus.NewRegistry()
	s, err := Open(Options{Path: path, NoSync: true, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, []string{"a"}, 1)
	if err := s.Close(); err != nil {
		t.Fatalf("first close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Fatalf("%d metric families left registered after close", len(mfs))
	}
	s2 := openTest(t, Options{Path: path, Registerer: reg})
	appendN(t, s2, []string{"a"}, 1)
	if n := counter(t, reg, "livedash_store_appended_frames_total"); n != 1 {
		t.Fatalf("the reopened store counted %v appended frames, want 1", n)
	}
}

// Start-up trim error (trimExcess failing): a ring over its lowered
// retention whose trim cannot be committed (the file may not grow past
// MaxSize, and deleting the excess needs new pages) fails Open with the
// path, the retention and the cause; it is not taken for corruption (nothing
// moved aside, same epoch) and the file is intact: without the size limit
// it opens and trims.
func TestStartupTrimErrorFailsOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s, err := Open(Options{Path: path, NoSync: true, MaxFrames: 30000})
	if err != nil {
		t.Fatal(err)
	}
	// One transaction: the file has almost no free pages to reuse.
	bs := make([]store.Batch, 25000)
	for i := range bs {
		bs[i] = batch("a", float64(i))
	}
	if _, err := s.Append(bs); err != nil {
		t.Fatal(err)
	}
	epoch, head := s.Epoch(), s.Head()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The size of the data as committed: its high-water mark in pages.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var used int64
	_ = db.View(func(tx *bbolt.Tx) error { used = tx.Size(); return nil })
	_ = db.Close()

	_, err = Open(Options{Path: path, NoSync: true, MaxFrames: 100, MaxSize: used})
	if err == nil {
		t.Fatal("Open trimmed 24,900 frames without growing the file: the trim error is not reached this way")
	}
	if !errors.Is(err, berrors.ErrMaxSizeReached) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "trim") {
		t.Fatalf("open: %v; want the trim's ErrMaxSizeReached with the path", err)
	}
	if aside, _ := filepath.Glob(path + ".corrupt-*"); len(aside) != 0 {
		t.Fatalf("a trim error was taken for corruption: %v", aside)
	}
	checkFile(t, path)
	s = openTest(t, Options{Path: path, MaxFrames: 100})
	if s.Epoch() != epoch || s.Head() != head || s.Len() != 100 {
		t.Fatalf("reopened: epoch %x head %v len %d; want %x %v 100", s.Epoch(), s.Head(), s.Len(), epoch, head)
	}
}

// The bad-record counter (badRecord): a stored record that cannot be parsed
// is skipped by After, AfterView and ScanView and counted once per read
// that meets it in livedash_store_unreadable_frames_total; it is logged once.
func TestBadRecordCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	s := openTest(t, Options{NoSync: true, Registerer: reg, Logger: slogTo(&logs)})
	appendN(t, s, []string{"a"}, 10)
	const metric = "livedash_store_unreadable_frames_total"
	if n := counter(t, reg, metric); n != 0 {
		t.Fatalf("%s = %v before any bad record", metric, n)
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketFrames)
		if err := b.Put(seqKey(4), []byte{2, 0, 0}); err != nil { // unknown format version
			return err
		}
		return b.Put(seqKey(7), []byte{recordVersion, 0, 0, 0, 0, 0, 0, 0, 1, 200, 'a'}) // topic length past the end
	}); err != nil {
		t.Fatal(err)
	}
	cur := store.ID{Epoch: s.Epoch()}
	if r := s.After(cur, nil, store.Limits{}); r.Err != nil || len(r.Frames) != 8 || r.Next != s.Head() {
		t.Fatalf("After past 2 bad records: err %v, %d frames, next %v", r.Err, len(r.Frames), r.Next)
	}
	if n := counter(t, reg, metric); n != 2 {
		t.Fatalf("%s = %v after one read over 2 bad records, want 2", metric, n)
	}
	seen := 0
	if r := s.AfterView(cur, nil, store.Limits{}, func(uint64, int64, []byte, []byte) { seen++ }); r.Err != nil || seen != 8 {
		t.Fatalf("AfterView past 2 bad records: err %v, %d frames", r.Err, seen)
	}
	seen = 0
	if last, err := s.ScanView(0, 0, func(uint64, int64, []byte, []byte) bool { seen++; return true }); err != nil || seen != 8 || last != 10 {
		t.Fatalf("ScanView past 2 bad records: err %v, %d frames, last %d", err, seen, last)
	}
	if n := counter(t, reg, metric); n != 6 {
		t.Fatalf("%s = %v after three reads over 2 bad records, want 6", metric, n)
	}
	if n := strings.Count(logs.String(), "unreadable frame"); n != 1 {
		t.Fatalf("the unreadable frame was logged %d times, want once:\n%s", n, logs.String())
	}
}
