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

// allClients says whether every client saw at least n frames, the last
// with a seq above after.
func allClients(clients []*resumingClient, after int64, n int) bool {
	for _, c := range clients {
		c.mu.Lock()
		ok := len(c.ids) >= n && seqOf(c.ids[len(c.ids)-1]) > after
		c.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
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
	// Every client streams before the stop, and resumes after the restart:
	// it gets frames committed by the second server (past its first head)
	// and 100 in all.
	waitFor(t, "every client streaming", 30*time.Second, func() bool { return allClients(clients, 0, 30) })
	if err := srv.Stop(); err != nil {
		t.Fatalf("first server: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // down: clients keep trying
	srv2 := startServer(t, "--config", conf, "--store", storePath, "--listen", srv.Addr)
	mu.Lock()
	url = srv2.URL
	mu.Unlock()
	_, head2 := statusOf(t, srv2.URL)
	waitFor(t, "every client resumed on the second server", 30*time.Second, func() bool {
		return allClients(clients, seqOf(head2), 100)
	})
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("clients did not stop within 30s of their context ending")
	}

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
