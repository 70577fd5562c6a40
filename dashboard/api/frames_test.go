package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

func TestFramesReadsAfterCursor(t *testing.T) {
	st := openStore(t, bolt.Options{})
	ts := newTestServer(t, st, testCfg(), Options{})
	var all []store.Frame
	for range 5 {
		all = append(all, appendFrames(t, st, "cpu", 1, nil)...)
		all = append(all, appendFrames(t, st, "mem", 1, nil)...)
	}
	head := st.Head().String()

	t.Run("after omitted starts at the head", func(t *testing.T) {
		var r framesResp
		getJSON(t, ts.url+"/api/v1/frames", &r)
		if len(r.Frames) != 0 || r.Next != head || r.Head != head || r.Reset != nil {
			t.Fatalf("got %+v, want no frames and next=head=%s", r, head)
		}
	})
	t.Run("after=oldest returns every frame verbatim", func(t *testing.T) {
		var r framesResp
		getJSON(t, ts.url+"/api/v1/frames?after=oldest", &r)
		if len(r.Frames) != len(all) {
			t.Fatalf("got %d frames, want %d", len(r.Frames), len(all))
		}
		for i, f := range r.Frames {
			if !bytes.Equal(f, all[i].JSON) {
				t.Fatalf("frame %d: got %s, want the stored bytes %s", i, f, all[i].JSON)
			}
		}
		if r.Next != head || r.Oldest != all[0].ID.String() {
			t.Fatalf("next=%s oldest=%s", r.Next, r.Oldest)
		}
	})
	t.Run("topic filter and paging by limit", func(t *testing.T) {
		cursor := "oldest"
		var got []string
		for range 10 {
			var r framesResp
			getJSON(t, ts.url+"/api/v1/frames?topics=mem&limit=2&after="+cursor, &r)
			for _, f := range r.Frames {
				got = append(got, string(f))
			}
			if len(r.Frames) == 0 {
				break
			}
			cursor = r.Next
		}
		var want []string
		for _, f := range all {
			if f.Topic == "mem" {
				want = append(want, string(f.JSON))
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("paged mem frames:\n got %q\nwant %q", got, want)
		}
	})
	t.Run("after an ID", func(t *testing.T) {
		var r framesResp
		getJSON(t, ts.url+"/api/v1/frames?after="+all[6].ID.String(), &r)
		if len(r.Frames) != 3 || !bytes.Equal(r.Frames[0], all[7].JSON) {
			t.Fatalf("got %d frames", len(r.Frames))
		}
	})
}

func TestFramesResetReasons(t *testing.T) {
	st := openStore(t, bolt.Options{MaxFrames: 5})
	ts := newTestServer(t, st, testCfg(), Options{})
	all := appendFrames(t, st, "cpu", 10, nil)
	ep := st.Epoch()
	head, oldest := st.Head().String(), st.Oldest().String()
	for _, tc := range []struct {
		name, after, reason string
		frames              int
	}{
		{"unknown epoch", store.ID{Epoch: ep ^ 1, Seq: 7}.String(), "unknown_epoch", 0},
		{"future", store.ID{Epoch: ep, Seq: 99}.String(), "future", 0},
		{"expired continues from the oldest", all[1].ID.String(), "expired", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r framesResp
			// A reset is never held, even with wait.
			start := time.Now()
			if code := getJSON(t, ts.url+"/api/v1/frames?wait=60s&after="+tc.after, &r); code != 200 {
				t.Fatalf("status %d", code)
			}
			if time.Since(start) > 30*time.Second {
				t.Fatal("a response with a reset was held")
			}
			if r.Reset == nil || r.Reset.Reason != tc.reason || r.Reset.Requested != tc.after ||
				r.Reset.Head != head || r.Reset.Oldest != oldest {
				t.Fatalf("reset %+v, want %s", r.Reset, tc.reason)
			}
			if len(r.Frames) != tc.frames || r.Next != head {
				t.Fatalf("frames %d next %s, want %d and %s", len(r.Frames), r.Next, tc.frames, head)
			}
			if tc.frames > 0 && !bytes.Equal(r.Frames[0], all[5].JSON) {
				t.Fatalf("expired: first frame %s, want the oldest retained", r.Frames[0])
			}
		})
	}
}

func waitParked(tb testing.TB, a *API, n int) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for testutil.ToFloat64(a.m.parked) < float64(n) {
		if time.Now().After(deadline) {
			tb.Fatalf("only %v of %d long polls parked", testutil.ToFloat64(a.m.parked), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLongPollReturnsOnMatchingCommit(t *testing.T) {
	st := openStore(t, bolt.Options{})
	ts := newTestServer(t, st, testCfg(), Options{})
	appendFrames(t, st, "cpu", 1, nil)
	after := st.Head().String()

	var r framesResp
	done := getJSONAsync(ts.url+"/api/v1/frames?wait=30s&topics=mem&after="+after, &r)
	waitParked(t, ts.api, 1)
	appendFrames(t, st, "cpu", 3, nil) // other topic: stays parked
	select {
	case a := <-done:
		t.Fatalf("returned on a frame of another topic: %+v (%v)", r, a.err)
	case <-time.After(200 * time.Millisecond):
	}
	waitParked(t, ts.api, 1)
	fs := appendFrames(t, st, "mem", 1, nil)
	committed := time.Now()
	// Answered by the commit, not by the 30 s wait: within a third of it.
	a := await(t, done, 10*time.Second, "long poll after a matching commit")
	t.Logf("long poll answered %v after the matching commit", a.at.Sub(committed))
	if a.code != 200 || len(r.Frames) != 1 || !bytes.Equal(r.Frames[0], fs[0].JSON) || r.Next != fs[0].ID.String() {
		t.Fatalf("got %d %+v", a.code, r)
	}
}

func TestLongPollTimesOutAtWait(t *testing.T) {
	st := openStore(t, bolt.Options{})
	ts := newTestServer(t, st, testCfg(), Options{})
	appendFrames(t, st, "cpu", 2, nil)
	after := st.Head().String()
	appendFrames(t, st, "cpu", 1, nil) // not matching topics=mem
	start := time.Now()
	var r framesResp
	getJSON(t, ts.url+"/api/v1/frames?wait=400ms&topics=mem&after="+after, &r)
	took := time.Since(start)
	t.Logf("wait=400ms returned after %v", took)
	// Not before the wait; the ceiling only catches a poll that never ends.
	if took < 400*time.Millisecond || took > 15*time.Second {
		t.Fatalf("returned after %v, want 400ms plus up to 40ms of jitter (and scheduling)", took)
	}
	if len(r.Frames) != 0 || r.Next != st.Head().String() || r.Reset != nil {
		t.Fatalf("got %+v: want no frames and a cursor past the non-matching frame", r)
	}
}

func TestLongPollClientGoneAndClose(t *testing.T) {
	st := openStore(t, bolt.Options{})
	ts := newTestServer(t, st, testCfg(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.url+"/api/v1/frames?wait=60s", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitParked(t, ts.api, 1)
	cancel()
	select {
	case <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled request did not return within 10s")
	}
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(ts.api.m.parked) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("handler still parked after the client went away")
		}
		time.Sleep(time.Millisecond)
	}

	// Close releases parked polls with an empty answer.
	var r framesResp
	done := getJSONAsync(ts.url+"/api/v1/frames?wait=60s", &r)
	waitParked(t, ts.api, 1)
	ts.api.Close()
	if a := await(t, done, 10*time.Second, "a long poll parked when Close was called"); a.code != 200 || len(r.Frames) != 0 || r.Next != st.Head().String() {
		t.Fatalf("got %d %+v", a.code, r)
	}
}

// TestCursorEquivalence alternates between /frames long polls and resuming
// with store.After (what the stream does on reconnect) on one cursor while a
// writer appends; the frames seen must be exactly the ring's sequence.
func TestCursorEquivalence(t *testing.T) {
	st := openStore(t, bolt.Options{})
	// Frames from before the API started are only in the store; later ones
	// are also in the recent window: the cursor crosses both.
	appendFrames(t, st, "cpu", 40, nil)
	ts := newTestServer(t, st, testCfg(), Options{})
	const total = 300
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 40; i < total; {
			n := 1 + rng.IntN(3)
			var bs []store.Batch
			for j := 0; j < n && i < total; j++ {
				bs = append(bs, store.Batch{Topic: []string{"cpu", "mem", "net"}[rng.IntN(3)], Time: t0,
					Samples: []store.Sample{{Name: "x_ratio", Value: float64(i)}}})
				i++
			}
			if _, err := st.Append(bs); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		}
	})
	rng := rand.New(rand.NewPCG(3, 4))
	cursor := store.ID{Epoch: st.Epoch()}
	var seen []string
	for step := 0; len(seen) < total; step++ {
		if step > 10*total {
			t.Fatalf("no progress: %d of %d frames", len(seen), total)
		}
		if rng.IntN(2) == 0 {
			var r framesResp
			getJSON(t, fmt.Sprintf("%s/api/v1/frames?wait=2s&limit=%d&after=%s", ts.url, 1+rng.IntN(7), cursor), &r)
			if r.Reset != nil {
				t.Fatalf("reset %+v", r.Reset)
			}
			for _, f := range r.Frames {
				seen = append(seen, string(f))
			}
			next, err := store.ParseID(r.Next)
			if err != nil {
				t.Fatal(err)
			}
			cursor = next
		} else {
			res := st.After(cursor, nil, store.Limits{Frames: 1 + rng.IntN(7)})
			if res.Reset != store.OK || res.Err != nil {
				t.Fatalf("After: %v %v", res.Reset, res.Err)
			}
			for _, f := range res.Frames {
				seen = append(seen, string(f.JSON))
			}
			cursor = res.Next
		}
	}
	wg.Wait()
	all := st.After(store.ID{Epoch: st.Epoch()}, nil, store.Limits{})
	if len(all.Frames) != total || len(seen) != total {
		t.Fatalf("ring has %d frames, client saw %d", len(all.Frames), len(seen))
	}
	for i, f := range all.Frames {
		if string(f.JSON) != seen[i] {
			t.Fatalf("frame %d: client saw %s, ring has %s", i, seen[i], f.JSON)
		}
	}
}

// TestManyParkedLongPolls parks thousands of long polls over several source
// addresses (127.0.0.2…) and releases them all with one commit.
func TestManyParkedLongPolls(t *testing.T) {
	n := 5000
	if raceEnabled {
		n = 1000 // the race detector allows 8128 goroutines; each poll costs two on the server
	}
	if testing.Short() {
		n = 200
	}
	st := openStore(t, bolt.Options{})
	ts := newTestServer(t, st, testCfg(), Options{})
	appendFrames(t, st, "cpu", 1, nil)
	host := ts.srv.Listener.Addr().String()
	req := []byte("GET /api/v1/frames?wait=60s HTTP/1.1\r\nHost: livedash\r\n\r\n")
	conns := make([]net.Conn, n)
	for i := range conns {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%50))}}
		c, err := d.Dial("tcp", host)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns[i] = c
		defer c.Close()
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
	}
	waitParked(t, ts.api, n)
	// Readers block before the commit, so each latency is the time from the
	// commit to the response being read.
	lat := make([]time.Duration, n)
	var committed time.Time
	var commitMu sync.RWMutex
	commitMu.Lock()
	var wg sync.WaitGroup
	readOne := func(i int, c net.Conn) {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Errorf("conn %d: %v", i, err)
			return
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		commitMu.RLock()
		lat[i] = time.Since(committed)
		commitMu.RUnlock()
		if resp.StatusCode != 200 || !bytes.Contains(body.Bytes(), []byte(`"frames":[{`)) {
			t.Errorf("conn %d: %d %s", i, resp.StatusCode, body.Bytes())
		}
	}
	if !raceEnabled {
		for i, c := range conns {
			wg.Go(func() { readOne(i, c) })
		}
		time.Sleep(100 * time.Millisecond) // let the readers block
	}
	if f := os.Getenv("WAKE_PROFILE"); f != "" {
		pf, _ := os.Create(f)
		_ = pprof.StartCPUProfile(pf)
		defer pprof.StopCPUProfile()
	}
	committed = time.Now()
	commitMu.Unlock()
	appendFrames(t, st, "cpu", 1, nil)
	if raceEnabled {
		for i, c := range conns { // the race detector's goroutine limit: read in turn
			readOne(i, c)
		}
	}
	wg.Wait()
	slices.Sort(lat)
	t.Logf("%d parked long polls released by one commit: p50 %v p99 %v max %v (reads sequential: %v)",
		n, lat[n/2], lat[n*99/100], lat[n-1], raceEnabled)
}

// Polls released by one commit share one answer only when they asked the
// same: the same cursor, topics and limit against the same window.
func TestSharedPollAnswersKeyedByQuery(t *testing.T) {
	st := openStore(t, bolt.Options{})
	ts := newTestServer(t, st, testCfg(), Options{})
	appendFrames(t, st, "cpu", 1, nil)
	after := st.Head().String()
	queries := []string{
		"topics=cpu&limit=1", "topics=cpu&limit=1", // identical: may share
		"topics=cpu", "topics=mem", "topics=cpu,mem&limit=2", "topics=cpu,mem",
	}
	bodies := make([][]byte, len(queries))
	var wg sync.WaitGroup
	for i, q := range queries {
		wg.Go(func() {
			code, b := get(t, ts.url+"/api/v1/frames?wait=30s&after="+after+"&"+q)
			if code != 200 {
				t.Errorf("%s: %d %s", q, code, b)
			}
			bodies[i] = b
		})
	}
	waitParked(t, ts.api, len(queries))
	// One commit of three frames: cpu, mem, cpu.
	fs, err := st.Append([]store.Batch{
		{Topic: "cpu", Time: t0.Add(time.Hour), Samples: []store.Sample{{Name: "a", Value: 1}}},
		{Topic: "mem", Time: t0.Add(time.Hour), Samples: []store.Sample{{Name: "b", Value: 2}}},
		{Topic: "cpu", Time: t0.Add(time.Hour), Samples: []store.Sample{{Name: "c", Value: 3}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	want := [][]store.Frame{{fs[0]}, {fs[0]}, {fs[0], fs[2]}, {fs[1]}, {fs[0], fs[1]}, fs}
	for i, q := range queries {
		var r framesResp
		if err := json.Unmarshal(bodies[i], &r); err != nil {
			t.Fatalf("%s: %v: %s", q, err, bodies[i])
		}
		if len(r.Frames) != len(want[i]) {
			t.Fatalf("%s: %d frames, want %d: %s", q, len(r.Frames), len(want[i]), bodies[i])
		}
		for j, f := range want[i] {
			if !bytes.Equal(r.Frames[j], f.JSON) {
				t.Fatalf("%s: frame %d = %s, want %s", q, j, r.Frames[j], f.JSON)
			}
		}
		if wantNext := want[i][len(want[i])-1].ID.String(); (i == 0 || i == 1 || i == 4) && r.Next != wantNext {
			t.Errorf("%s: next %s, want %s (limited)", q, r.Next, wantNext)
		}
	}
	// A later poll from the same cursor, after another commit, is not
	// answered from the earlier window.
	more := appendFrames(t, st, "cpu", 1, nil)
	var r framesResp
	getJSON(t, ts.url+"/api/v1/frames?after="+after+"&topics=cpu&limit=1", &r)
	getJSON(t, ts.url+"/api/v1/frames?after="+fs[2].ID.String()+"&topics=cpu&limit=1", &r)
	if len(r.Frames) != 1 || !bytes.Equal(r.Frames[0], more[0].JSON) {
		t.Fatalf("after a new commit: %+v", r)
	}
}

// Polls that ask the same of the same recent window — the many one commit
// releases — are answered with one encoded body between them; a poll that
// asks something else gets its own.
func TestIdenticalPollsShareOneBody(t *testing.T) {
	st := openStore(t, bolt.Options{})
	a := newTestServer(t, st, testCfg(), Options{}).api
	appendFrames(t, st, "cpu", 1, nil)
	after := st.Head().String()
	appendFrames(t, st, "cpu", 1, nil)
	answer := func(query string) []byte {
		t.Helper()
		pl, aerr := a.newPoll(query)
		if aerr != nil {
			t.Fatal(aerr)
		}
		_, closed, gen := a.changed()
		an, done, err := a.read(&pl, gen, closed)
		if err != nil || !done || an.shared == nil {
			t.Fatalf("%s: done %v, shared %v, %v", query, done, an.shared != nil, err)
		}
		return an.body()
	}
	q := "topics=cpu&wait=30s&after=" + after
	b1, b2 := answer(q), answer(q)
	if &b1[0] != &b2[0] {
		t.Fatal("two identical polls got two encoded bodies")
	}
	if b3 := answer("topics=cpu&wait=29s&after=" + after); &b3[0] == &b1[0] || !bytes.Equal(b3, b1) {
		t.Fatal("another query shared the body, or got another answer")
	}
}

func TestHTTPDateOncePerSecond(t *testing.T) {
	now := time.Date(2026, 11, 27, 19, 30, 0, 100, time.UTC)
	a := httpDate(now)
	if a[0] != "Fri, 27 Nov 2026 19:30:00 GMT" {
		t.Fatalf("date %q", a[0])
	}
	if b := httpDate(now.Add(500 * time.Millisecond)); &b[0] != &a[0] {
		t.Fatal("same second formatted twice")
	}
	if c := httpDate(now.Add(time.Second)); c[0] != "Fri, 27 Nov 2026 19:30:01 GMT" {
		t.Fatalf("next second %q", c[0])
	}
}
