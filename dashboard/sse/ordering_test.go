package sse

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"livedash/dashboard/hub"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

// TestOrderingProperty: many clients disconnect and reconnect at random —
// with their last ID, a stale ID, a malformed ID or none — while frames are
// appended at a high rate. Checked afterwards against the full record of
// appended frames: within every session, each frame is exactly the next
// frame matching the client's topics after the position the stream stated
// last (the resume cursor, or the id of a hello/reset). So IDs are strictly
// increasing, nothing is duplicated, and the only gaps are the ones a reset
// (or a fresh start without cursor) announced. With "last", the client's
// position carries across reconnects: no gap or duplicate across them.
func TestOrderingProperty(t *testing.T) {
	cfg := testConfig()
	cfg.ReplayMaxFrames = 1000
	e := newEnv(t, cfg, func(o *bolt.Options) { o.MaxFrames = 3000 })
	epoch := e.store.Epoch()
	topics := []string{"a", "b", "c"}

	// Appender: batches of 1–4 frames of random topics, as fast as bbolt
	// (NoSync) allows with a short pause.
	var (
		recMu sync.Mutex
		rec   = []string{""} // rec[seq] = topic; seq 0 is nothing
	)
	stop := make(chan struct{})
	var appender sync.WaitGroup
	appender.Add(1)
	go func() {
		defer appender.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := 1 + rand.IntN(4)
			bs := make([]store.Batch, n)
			for i := range bs {
				bs[i] = store.Batch{Topic: topics[rand.IntN(len(topics))], Samples: []store.Sample{{Name: "x", Value: 1}}}
			}
			fs, err := e.store.Append(bs)
			if err != nil {
				t.Error(err)
				return
			}
			recMu.Lock()
			for _, f := range fs {
				if f.ID.Seq != uint64(len(rec)) {
					t.Errorf("store seq %d, want %d", f.ID.Seq, len(rec))
				}
				rec = append(rec, f.Topic)
			}
			recMu.Unlock()
			time.Sleep(200 * time.Microsecond)
		}
	}()

	type item struct {
		typ string // hello, reset, frame
		id  string // "" when the event had no id field
	}
	type session struct {
		topics []string // nil: all
		cursor string   // what the client sent ("" none)
		mode   string
		items  []item
	}
	const clients = 16
	sessions := make([][]session, clients)
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	deadline := time.Now().Add(3 * time.Second)

	var wg sync.WaitGroup
	for ci := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sub []string
			if ci%3 == 1 {
				sub = []string{"a"}
			} else if ci%3 == 2 {
				sub = []string{"b", "c"}
			}
			last := "" // EventSource's lastEventId
			for time.Now().Before(deadline) {
				s := session{topics: sub}
				switch r := rand.IntN(10); {
				case r < 6:
					s.mode, s.cursor = "last", last
				case r < 8:
					s.mode = "stale"
					seq := uint64(0)
					if id, err := store.ParseID(last); err == nil {
						seq = id.Seq - min(id.Seq, uint64(rand.IntN(4000)))
					}
					s.cursor = idStr(epoch, seq)
				case r < 9:
					s.mode, s.cursor = "malformed", []string{"zzz", "-1", strings.Repeat("9", 70)}[rand.IntN(3)]
				default:
					s.mode = "none"
				}
				ctx, cancel := context.WithCancel(context.Background())
				url := e.url
				if sub != nil {
					url += "?topics=" + strings.Join(sub, ",")
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if s.cursor != "" {
					req.Header.Set("Last-Event-ID", s.cursor)
				}
				resp, err := hc.Do(req)
				if err != nil {
					cancel()
					t.Error(err)
					return
				}
				done := make(chan struct{})
				go func() {
					defer close(done)
					prev := s.cursor
					for ev, err := range sse.Read(resp.Body, nil) {
						if err != nil {
							return
						}
						id := ""
						if ev.LastEventID != prev {
							id = ev.LastEventID
							prev = id
						}
						s.items = append(s.items, item{typ: ev.Type, id: id})
					}
				}()
				time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
				cancel()
				resp.Body.Close()
				<-done
				for _, it := range s.items {
					if it.id != "" {
						last = it.id
					}
				}
				if s.mode == "last" && s.cursor == "" {
					s.mode = "none"
				}
				sessions[ci] = append(sessions[ci], s)
			}
		}()
	}
	wg.Wait()
	close(stop)
	appender.Wait()

	recMu.Lock()
	defer recMu.Unlock()
	matches := func(sub []string, seq uint64) bool {
		if sub == nil {
			return true
		}
		for _, s := range sub {
			if rec[seq] == s {
				return true
			}
		}
		return false
	}
	nextMatching := func(sub []string, after uint64) uint64 {
		for s := after + 1; s < uint64(len(rec)); s++ {
			if matches(sub, s) {
				return s
			}
		}
		return 0
	}
	var nSessions, nFrames, nResets int
	for ci, ss := range sessions {
		for si, s := range ss {
			nSessions++
			pos, known := uint64(0), false
			if id, err := store.ParseID(s.cursor); err == nil {
				pos, known = id.Seq, true
			}
			for k, it := range s.items {
				switch it.typ {
				case "hello":
					if k != 0 {
						t.Fatalf("client %d session %d: hello at %d", ci, si, k)
					}
					if it.id != "" { // started live without a cursor
						if s.cursor != "" {
							t.Fatalf("client %d session %d (%s): hello moved the cursor", ci, si, s.mode)
						}
						pos, known = seqOf(t, it.id), true
					}
				case "reset":
					nResets++
					if s.mode == "last" {
						t.Fatalf("client %d session %d: reset when resuming with the last ID %q", ci, si, s.cursor)
					}
					pos, known = seqOf(t, it.id), true
				case "frame":
					nFrames++
					seq := seqOf(t, it.id)
					if !known {
						t.Fatalf("client %d session %d (%s): frame %d before any stated position", ci, si, s.mode, seq)
					}
					if want := nextMatching(s.topics, pos); seq != want {
						t.Fatalf("client %d session %d (%s, cursor %q, topics %v): got frame %d after %d, want %d",
							ci, si, s.mode, s.cursor, s.topics, seq, pos, want)
					}
					pos = seq
				default:
					t.Fatalf("unexpected event type %q", it.typ)
				}
			}
		}
	}
	t.Logf("%d frames appended; %d sessions, %d frames received, %d resets; disconnects slow=%v",
		len(rec)-1, nSessions, nFrames, nResets, e.metric(t, "disconnects", hub.DisconnectSlow))
	if nFrames == 0 || nResets == 0 {
		t.Fatal("the test exercised nothing")
	}
}
