package ws

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"livedash/dashboard/hub"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

// TestOrderingProperty is the stream's ordering property over WebSocket:
// many clients disconnect and reconnect at random — with their last ID, a
// stale ID, a malformed ID or none — and some change their subscription
// mid-session (to other topics, with their last ID as "after" or without
// "after"), while frames are appended at a high rate. Checked afterwards
// against the full record of appended frames: within every subscription,
// each frame is exactly the next frame matching its topics after the
// position stated last (the cursor sent, the head of a hello without
// cursor or of a reset, the previous frame). A change without "after" goes
// on from the server's own position, which the client does not know: there
// the first frame may skip frames that only the new topics match, never
// one the old topics matched (those were all delivered before the change).
// So IDs increase strictly, nothing is repeated, and the only gaps are the
// announced ones; with "last", the position carries across reconnects.
func TestOrderingProperty(t *testing.T) {
	cfg := testConfig()
	cfg.ReplayMaxFrames = 1000
	e := newEnv(t, cfg, envOpts{store: func(o *bolt.Options) { o.MaxFrames = 3000 }})
	epoch := e.store.Epoch()
	topics := []string{"a", "b", "c"}
	subsets := [][]string{nil, {"a"}, {"b", "c"}, {"c"}}

	var (
		recMu sync.Mutex
		rec   = []string{""} // rec[seq] = topic
	)
	stop := make(chan struct{})
	var appender sync.WaitGroup
	appender.Go(func() {
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
				rec = append(rec, f.Topic)
			}
			recMu.Unlock()
			time.Sleep(200 * time.Microsecond)
		}
	})

	type item struct {
		typ string // hello, reset, frame
		id  string // frame id, reset head, hello head
	}
	type change struct {
		topics []string
		after  string // "" = continue
	}
	type session struct {
		topics []string
		cursor string
		mode   string
		change *change // sent mid-session, if any
		items  []item
	}
	const clients = 16
	sessions := make([][]session, clients)
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for ci := range clients {
		wg.Go(func() {
			sub := subsets[ci%len(subsets)]
			last := ""
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
				q := url.Values{}
				if sub != nil {
					q.Set("topics", strings.Join(sub, ","))
				}
				if s.cursor != "" {
					q.Set("lastEventId", s.cursor)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c, _, err := websocket.Dial(ctx, e.url+"?"+q.Encode(), nil)
				cancel()
				if err != nil {
					t.Error(err)
					return
				}
				c.SetReadLimit(-1)
				var mu sync.Mutex // guards s.items against the change below
				done := make(chan struct{})
				go func() {
					defer close(done)
					for {
						_, b, err := c.Read(context.Background())
						if err != nil {
							return
						}
						mu.Lock()
						for line := range bytes.SplitSeq(b, []byte("\n")) {
							var ev event
							if err := json.Unmarshal(line, &ev); err != nil {
								t.Error(err)
							}
							if ev.Event != "hb" {
								s.items = append(s.items, item{typ: ev.Event, id: ev.id()})
							}
						}
						mu.Unlock()
					}
				}()
				life := time.Duration(rand.IntN(150)) * time.Millisecond
				if rand.IntN(2) == 0 {
					// Change the subscription once, part-way.
					time.Sleep(life / 2)
					ch := &change{topics: subsets[rand.IntN(len(subsets))]}
					mu.Lock()
					for _, it := range s.items {
						if it.typ == "frame" || it.typ == "reset" || (it.typ == "hello" && s.cursor == "") {
							ch.after = it.id
						}
					}
					if ch.after == "" && s.mode != "malformed" {
						ch.after = s.cursor
					}
					if rand.IntN(2) == 0 {
						ch.after = "" // continue from the server's position
					}
					s.change = ch
					mu.Unlock()
					msg := map[string]any{"op": "subscribe", "topics": ch.topics}
					if ch.after != "" {
						msg["after"] = ch.after
					}
					b, _ := json.Marshal(msg)
					wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
					_ = c.Write(wctx, websocket.MessageText, b)
					wcancel()
					life = max(life/2, 20*time.Millisecond)
				}
				time.Sleep(life)
				_ = c.CloseNow()
				<-done
				for _, it := range s.items {
					if it.typ == "frame" || it.typ == "reset" {
						last = it.id
					}
				}
				if s.mode == "last" && s.cursor == "" {
					s.mode = "none"
				}
				sessions[ci] = append(sessions[ci], s)
			}
		})
	}
	wg.Wait()
	close(stop)
	appender.Wait()

	recMu.Lock()
	defer recMu.Unlock()
	matches := func(sub []string, seq uint64) bool { return sub == nil || slices.Contains(sub, rec[seq]) }
	nextMatching := func(sub []string, after uint64) uint64 {
		for s := after + 1; s < uint64(len(rec)); s++ {
			if matches(sub, s) {
				return s
			}
		}
		return 0
	}
	var nSessions, nFrames, nResets, nChanges int
	for ci, ss := range sessions {
		for si, s := range ss {
			nSessions++
			topics := s.topics
			pos, known := uint64(0), false
			if id, err := store.ParseID(s.cursor); err == nil {
				pos, known = id.Seq, true
			}
			hellos := 0
			var old []string // the topics before a change without "after", until its first frame
			for k, it := range s.items {
				switch it.typ {
				case "hello":
					hellos++
					switch {
					case hellos == 1:
						if k != 0 {
							t.Fatalf("client %d session %d: first hello at %d", ci, si, k)
						}
						if s.cursor == "" {
							pos, known = seqOf(t, it.id), true
						}
					case hellos == 2 && s.change != nil:
						nChanges++
						if s.change.after != "" {
							pos, known = seqOf(t, s.change.after), true
						} else {
							old = topics
						}
						topics = s.change.topics
					default:
						t.Fatalf("client %d session %d: unexpected hello at %d", ci, si, k)
					}
				case "reset":
					nResets++
					if s.mode == "last" && hellos == 1 {
						t.Fatalf("client %d session %d: reset when resuming with the last ID %q", ci, si, s.cursor)
					}
					pos, known, old = seqOf(t, it.id), true, nil
				case "frame":
					nFrames++
					seq := seqOf(t, it.id)
					if !known {
						t.Fatalf("client %d session %d (%s): frame %d before any stated position", ci, si, s.mode, seq)
					}
					if old != nil {
						// First frame after a change without "after".
						if seq <= pos || !matches(topics, seq) {
							t.Fatalf("client %d session %d: frame %d after continuing from %d with topics %v", ci, si, seq, pos, topics)
						}
						for x := pos + 1; x < seq; x++ {
							if matches(topics, x) && matches(old, x) {
								t.Fatalf("client %d session %d: continuing from %d (topics %v → %v) skipped frame %d", ci, si, pos, old, topics, x)
							}
						}
						old = nil
					} else if want := nextMatching(topics, pos); seq != want {
						t.Fatalf("client %d session %d (%s, cursor %q, topics %v, change %+v): got frame %d after %d, want %d",
							ci, si, s.mode, s.cursor, topics, s.change, seq, pos, want)
					}
					pos = seq
				default:
					t.Fatalf("unexpected event %q", it.typ)
				}
			}
		}
	}
	t.Logf("%d frames appended; %d sessions, %d subscription changes, %d frames received, %d resets; disconnects slow=%v",
		len(rec)-1, nSessions, nChanges, nFrames, nResets, e.metric(t, "livedash_stream_disconnects_total", hub.DisconnectSlow))
	if nFrames == 0 || nResets == 0 || nChanges == 0 {
		t.Fatal("the test exercised nothing")
	}
}
