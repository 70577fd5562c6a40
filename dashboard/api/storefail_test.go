package api

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"livedash/dashboard/apierr"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
	"livedash/dashboard/store/storetest"
)

// faultyServer is an API over a Faulty store wrapping a real bbolt store,
// behind a real HTTP server. The API is loaded unless Load failed (loadErr).
type faultyServer struct {
	api     *API
	faulty  *storetest.Faulty
	store   *bolt.Store
	url     string
	loadErr error
}

// newFaultyServer serves an API over a Faulty wrapper of st; before runs
// after the wrapper exists and before Load (to switch failures on for it).
func newFaultyServer(t *testing.T, st *bolt.Store, opts Options, before func(*storetest.Faulty)) *faultyServer {
	t.Helper()
	f := storetest.NewFaulty(st)
	a := New(f, testCfg(), opts)
	f.OnCommit(a.OnCommit)
	if before != nil {
		before(f)
	}
	loadErr := a.Load()
	srv := httptest.NewServer(newEcho(a))
	t.Cleanup(func() {
		a.Close()
		srv.Close()
	})
	return &faultyServer{api: a, faulty: f, store: st, url: srv.URL, loadErr: loadErr}
}

// wantUnavailable checks a 503 store_unavailable answer in the JSON error
// shape, whose message does not carry the Go error.
func wantUnavailable(t *testing.T, what, url string) {
	t.Helper()
	code, b := get(t, url)
	var body apierr.Body
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("%s: %d %s: %v", what, code, b, err)
	}
	if code != 503 || body.Error.Code != "store_unavailable" {
		t.Fatalf("%s: %d %s, want 503 store_unavailable", what, code, b)
	}
	if strings.Contains(body.Error.Message, "injected") {
		t.Fatalf("%s: the Go error leaks into the message %q", what, body.Error.Message)
	}
}

// /frames, read: the store read after the cursor (a cursor the recent
// window cannot answer: frames committed before the API started) fails →
// 503 store_unavailable; once the store reads again the same poll is
// answered with every frame.
func TestFramesStoreReadError503(t *testing.T) {
	st := openStore(t, bolt.Options{})
	fs := appendFrames(t, st, "cpu", 5, nil)
	ts := newFaultyServer(t, st, Options{}, nil)
	ts.faulty.Fail(storetest.OpAfter)
	wantUnavailable(t, "after=oldest, store failing", ts.url+"/api/v1/frames?after=oldest")
	if n := ts.faulty.Calls(storetest.OpAfter); n != 1 {
		t.Fatalf("%d store reads for one poll, want 1", n)
	}
	ts.faulty.Heal(storetest.OpAfter)
	var r framesResp
	if code := getJSON(t, ts.url+"/api/v1/frames?after=oldest", &r); code != 200 || len(r.Frames) != len(fs) || r.Next != fs[len(fs)-1].ID.String() {
		t.Fatalf("after healing: %d, %d frames, next %s", code, len(r.Frames), r.Next)
	}
}

// /frames, read after a reset: the cursor's read answers a reset (another
// epoch) and the read from the stated position (resume) fails → 503, never a
// reset answer with frames missing.
func TestFramesResumeReadError503(t *testing.T) {
	st := openStore(t, bolt.Options{})
	appendFrames(t, st, "cpu", 3, nil)
	ts := newFaultyServer(t, st, Options{}, nil)
	ts.faulty.FailAfter(storetest.OpAfter, 1) // the cursor's read, then the resume fails
	foreign := store.ID{Epoch: st.Epoch() ^ 1, Seq: 2}
	wantUnavailable(t, "foreign epoch, resume failing", ts.url+"/api/v1/frames?after="+foreign.String())
	if n := ts.faulty.Calls(storetest.OpAfter); n != 2 {
		t.Fatalf("%d store reads, want 2 (the cursor's, the resume's)", n)
	}
}

// /query, store scan: a window older than memory holds (IndexFrames 8) is
// read from the store; a failing chunk read (readChunk's ScanView) → 503
// store_unavailable, counted as a store scan; memory-only windows are still
// answered meanwhile.
func TestQueryStoreScanError503(t *testing.T) {
	st := openStore(t, bolt.Options{})
	appendFrames(t, st, "cpu", 100, nil)
	now := t0.Add(101 * time.Second)
	ts := newFaultyServer(t, st, Options{IndexFrames: 8, Now: func() time.Time { return now }}, nil)
	ts.faulty.Fail(storetest.OpScanView)
	wantUnavailable(t, "a window older than memory", ts.url+"/api/v1/query?topics=cpu&after=-100&points=10")
	if n := testutil.ToFloat64(ts.api.m.storeScans); n != 1 {
		t.Fatalf("store scans %v, want 1", n)
	}
	var r queryResp
	if code := getJSON(t, ts.url+"/api/v1/query?topics=cpu&after=-5&points=5", &r); code != 200 || r.First == nil {
		t.Fatalf("a window memory covers, store failing: %d %+v", code, r)
	}
	ts.faulty.Heal(storetest.OpScanView)
	if code := getJSON(t, ts.url+"/api/v1/query?topics=cpu&after=-100&points=10", &r); code != 200 || r.First == nil || r.Last != st.Head().String() {
		t.Fatalf("after healing: %d %+v", code, r)
	}
}

// Load, store read error: Load returns the read's error (wrapped, naming
// the index), and the API does not stay in its loading state: what was read
// before the failure is indexed, and a commit after the failed Load is
// indexed and served at once. A later Load, the store healed, indexes
// everything.
func TestLoadReadErrorReturned(t *testing.T) {
	st := openStore(t, bolt.Options{})
	appendFrames(t, st, "cpu", 2*loadChunk, nil)
	ts := newFaultyServer(t, st, Options{}, func(f *storetest.Faulty) { f.FailAfter(storetest.OpScanView, 1) })
	if !errors.Is(ts.loadErr, storetest.ErrInjected) || !strings.Contains(ts.loadErr.Error(), "load api index") {
		t.Fatalf("Load: %v; want the store's error, wrapped", ts.loadErr)
	}
	ts.api.mu.RLock()
	loading, indexed := ts.api.loading, ts.api.idx.head.Seq
	ts.api.mu.RUnlock()
	if loading || indexed != loadChunk {
		t.Fatalf("after a failed Load: loading %v, index head %d; want false and the first chunk (%d)", loading, indexed, loadChunk)
	}
	mem := appendFrames(t, st, "mem", 1, nil)
	var latest struct {
		Head   string                     `json:"head"`
		Topics map[string]json.RawMessage `json:"topics"`
	}
	if code := getJSON(t, ts.url+"/api/v1/latest", &latest); code != 200 || latest.Head != mem[0].ID.String() || latest.Topics["mem"] == nil {
		t.Fatalf("a commit after a failed Load: %d head %s topics %d", code, latest.Head, len(latest.Topics))
	}
	ts.faulty.Heal(storetest.OpScanView)
	if err := ts.api.Load(); err != nil {
		t.Fatalf("Load, healed: %v", err)
	}
	if h := ts.api.headID(); h != st.Head() {
		t.Fatalf("index head %v after Load, want %v", h, st.Head())
	}
}
