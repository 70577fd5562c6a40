package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"livedash/dashboard/store"

	sse "github.com/tmaxmax/go-sse"
)

// resumingClient follows the stream like a browser would: on any error or
// end it reconnects (every 50 ms) with the last ID it saw. base() gives the
// current server URL.
type resumingClient struct {
	mu     sync.Mutex
	ids    []string
	resets []string
}

func (c *resumingClient) run(ctx context.Context, base func() string, first string) {
	last := first
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", base()+"/api/v1/stream", nil)
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			for ev, err := range sse.Read(resp.Body, nil) {
				if err != nil {
					break
				}
				c.mu.Lock()
				switch ev.Type {
				case "frame":
					c.ids = append(c.ids, ev.LastEventID)
					last = ev.LastEventID
				case "reset":
					c.resets = append(c.resets, ev.Data)
				}
				c.mu.Unlock()
			}
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Restart: stop the server mid-stream, start it again on the same store (and
// address): every client resumes with no gap and no duplicate, and no reset.
func TestStreamsResumeAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "fast.yaml")
	if err := os.WriteFile(conf, []byte("collectors:\n  synthetic:\n    enabled: true\n    interval: 20ms\n    series: 4\nstream:\n  drain_window: 300ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	storePath := filepath.Join(dir, "l.db")
	srv := startServer(t, "--config", conf, "--store", storePath)
	var mu sync.Mutex
	url := srv.URL
	base := func() string { mu.Lock(); defer mu.Unlock(); return url }
	start := pollFrames(t, srv.URL+"/api/v1/frames").Next

	ctx, cancel := context.WithCancel(context.Background())
	clients := make([]*resumingClient, 8)
	var wg sync.WaitGroup
	for i := range clients {
		clients[i] = &resumingClient{}
		wg.Go(func() { clients[i].run(ctx, base, start) })
	}
	time.Sleep(1500 * time.Millisecond)
	if err := srv.Stop(); err != nil {
		t.Fatalf("first server: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // down: clients keep trying
	srv2 := startServer(t, "--config", conf, "--store", storePath, "--listen", srv.Addr)
	mu.Lock()
	url = srv2.URL
	mu.Unlock()
	time.Sleep(1500 * time.Millisecond)
	cancel()
	wg.Wait()

	// The ring's sequence from start to the newest ID any client saw.
	var newest string
	var newestSeq uint64
	for _, c := range clients {
		if len(c.ids) == 0 {
			continue
		}
		id, err := store.ParseID(c.ids[len(c.ids)-1])
		if err != nil {
			t.Fatal(err)
		}
		if id.Seq > newestSeq {
			newest, newestSeq = id.String(), id.Seq
		}
	}
	seq := ringIDs(t, srv2.URL, start, newest)
	for i, c := range clients {
		if len(c.resets) > 0 {
			t.Errorf("client %d got resets %v", i, c.resets)
		}
		if len(c.ids) < 100 {
			t.Fatalf("client %d saw only %d frames", i, len(c.ids))
		}
		// Each client's record is a prefix of the ring's sequence.
		for j, id := range c.ids {
			if j >= len(seq) || id != seq[j] {
				t.Fatalf("client %d frame %d: %s; the ring's sequence has %d frames: %v", i, j, id, len(seq), seq[max(0, j-2):min(len(seq), j+2)])
			}
		}
	}
	t.Logf("8 clients, up to %d frames each, across a restart", len(seq))
}
