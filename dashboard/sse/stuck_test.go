package sse

import (
	"fmt"
	"testing"
	"time"

	"livedash/config"
	"livedash/dashboard/hub"
)

// A client that never reads holds nobody up: with a write timeout far
// beyond the test, its write stays blocked the whole time, and meanwhile 20
// healthy clients receive every one of 30 ticks in order — so they were
// served while it was stuck, not after a cut. It is still connected and
// uncut at the end (the write deadline, not this test, ends it).
func TestStuckClientHoldsNobody(t *testing.T) {
	cfg := testConfig()
	cfg.WriteTimeout = config.Duration(10 * time.Minute)
	cfg.QueueSize = 1 << 20
	e := newEnv(t, cfg)

	stuck := dialTinyBuffer(t, e.srv.Listener.Addr().String())
	defer stuck.Close()
	fmt.Fprintf(stuck, "GET /api/v1/stream?topics=big HTTP/1.1\r\nHost: x\r\n\r\n")

	const healthy, ticks = 20, 30
	clients := make([]*client, healthy)
	for i := range clients {
		clients[i] = dial(t, e.url, "topics=small", "")
		clients[i].next(t, 10*time.Second) // hello
	}
	waitFor(t, 10*time.Second, "every stream registered", func() bool { return e.hub.Streams() == healthy+1 })
	// The stuck client's socket buffers fill with the first ticks of 256 KiB:
	// its write blocks from there on.
	var small []string
	for range ticks {
		e.appendN(t, "big", 4, 64<<10)
		fs := e.appendN(t, "small", 1, 1)
		small = append(small, fs[0].ID.String())
	}
	for i, c := range clients {
		for k, want := range small {
			if ev := c.next(t, 30*time.Second); ev.Type != "frame" || ev.LastEventID != want {
				t.Fatalf("client %d, tick %d: %q %s, want frame %s", i, k, ev.Type, ev.LastEventID, want)
			}
		}
	}
	// Frames written: every small one to the healthy clients, and not all
	// the big ones to the stuck client (its write is blocked).
	if sent := e.metric(t, "frames_sent"); sent < healthy*ticks || sent >= healthy*ticks+4*ticks {
		t.Fatalf("%v frames written; want the %d small ones and fewer than the %d big ones", sent, healthy*ticks, 4*ticks)
	}
	if n := e.metric(t, "disconnects", hub.DisconnectWriteDeadline); n != 0 || e.hub.Streams() != healthy+1 {
		t.Fatalf("the stuck client was cut (write_deadline %v, %d streams): this test needs it stuck throughout", n, e.hub.Streams())
	}
}
