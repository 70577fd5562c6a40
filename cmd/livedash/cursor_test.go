package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"livedash/dashboard/store"
)

type framesPage struct {
	Frames []struct {
		ID string `json:"id"`
	} `json:"frames"`
	Next  string          `json:"next"`
	Head  string          `json:"head"`
	Reset json.RawMessage `json:"reset"`
}

func pollFrames(tb testing.TB, url string) framesPage {
	tb.Helper()
	var p framesPage
	if resp := getJSON(tb, url, &p); resp.StatusCode != 200 {
		tb.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if len(p.Reset) > 0 && string(p.Reset) != "null" {
		tb.Fatalf("GET %s: reset %s", url, p.Reset)
	}
	return p
}

// ringIDs pages through /api/v1/frames and returns the IDs of every frame
// after `after` up to and including `upTo`, as the ring holds them.
func ringIDs(tb testing.TB, base, after, upTo string) []string {
	tb.Helper()
	var ids []string
	for {
		p := pollFrames(tb, fmt.Sprintf("%s/api/v1/frames?after=%s&limit=1000", base, after))
		if len(p.Frames) == 0 {
			tb.Fatalf("ring has nothing after %s; expected frames up to %s", after, upTo)
		}
		for _, f := range p.Frames {
			ids = append(ids, f.ID)
			if f.ID == upTo {
				return ids
			}
		}
		after = p.Next
	}
}

// streamFrames opens the stream resuming after cursor and returns the IDs of
// the first n frames, failing on any reset.
func streamFrames(tb testing.TB, base, cursor string, n int) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/stream", nil)
	req.Header.Set("Last-Event-ID", cursor)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var ids []string
	for ev, err := range sse.Read(resp.Body, nil) {
		if err != nil {
			tb.Fatalf("stream after %s: %v (got %d of %d)", cursor, err, len(ids), n)
		}
		switch ev.Type {
		case "reset":
			tb.Fatalf("stream after %s: reset %s", cursor, ev.Data)
		case "frame":
			ids = append(ids, ev.LastEventID)
			if len(ids) == n {
				return ids
			}
		}
	}
	tb.Fatalf("stream after %s ended after %d of %d frames", cursor, len(ids), n)
	return nil
}

// Cursor equivalence: a client alternating between /frames long
// polls and stream reconnects with the last ID ends with exactly the ring's
// sequence of frames — no gap, no duplicate — while frames are appended fast.
func TestCursorEquivalenceAcrossTransports(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "fast.yaml")
	if err := os.WriteFile(conf, []byte("collectors:\n  synthetic:\n    enabled: true\n    interval: 20ms\n    series: 4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, "--config", conf)
	start := pollFrames(t, ts.URL+"/api/v1/frames").Next // the head: nothing old
	cursor := start
	var seen []string
	// Rounds until 200 frames were seen over at least 10 of them (about 4 s
	// undelayed); the deadline only catches a stream or poll that stalls.
	deadline := time.Now().Add(2 * time.Minute)
	for round := 0; len(seen) < 200 || round < 10; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("only %d frames seen in %d rounds within 2 minutes", len(seen), round)
		}
		if round%2 == 0 {
			limit := 1 + rand.IntN(40)
			p := pollFrames(t, fmt.Sprintf("%s/api/v1/frames?after=%s&limit=%d&wait=2s", ts.URL, cursor, limit))
			for _, f := range p.Frames {
				seen = append(seen, f.ID)
			}
			cursor = p.Next
		} else {
			ids := streamFrames(t, ts.URL, cursor, 1+rand.IntN(60))
			seen = append(seen, ids...)
			cursor = ids[len(ids)-1]
		}
	}
	want := ringIDs(t, ts.URL, start, cursor)
	if len(seen) < 100 {
		t.Fatalf("only %d frames seen", len(seen))
	}
	if len(seen) != len(want) {
		t.Fatalf("client saw %d frames, the ring holds %d over the same span", len(seen), len(want))
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("frame %d: client %s, ring %s", i, seen[i], want[i])
		}
	}
	var prev uint64
	for i, s := range seen {
		id, err := store.ParseID(s)
		if err != nil || (i > 0 && id.Seq <= prev) {
			t.Fatalf("frame %d: %s after seq %d", i, s, prev)
		}
		prev = id.Seq
	}
	t.Logf("%d frames over %s, alternating long polls and stream reconnects", len(seen), "4s")
}
