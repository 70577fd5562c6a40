package hub

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"livedash/dashboard/store"
)

// Topic filters: at most maxTopics items per request, each at most
// store.MaxTopicLen bytes; extra items are ignored and longer ones can match
// nothing.
const maxTopics = 256

// Disconnect reasons (livedash_stream_disconnects_total{reason}), returned by
// Subscriber.Run.
const (
	DisconnectSlow          = "slow"           // more than queue_size frames behind when woken
	DisconnectWriteDeadline = "write_deadline" // a write did not complete within the write timeout
	DisconnectLifetime      = "lifetime"       // max_lifetime reached
	DisconnectShutdown      = "shutdown"       // kicked by Shutdown
	DisconnectClient        = "client"         // the client went away (EOF, reset, a close)
	DisconnectResync        = "resync"         // the hub missed frames (see New); resume from the store
	DisconnectError         = "store_error"    // a replay read failed
	DisconnectPanic         = "panic"          // the transport recovered a panic
)

// Request is what a subscriber asks for: its topics and where to resume.
type Request struct {
	Topics map[string]struct{} // nil: every topic (see ParseTopics)
	// Cursor is the last ID the client saw, as it sent it ("" = none: start
	// at the head). Anything that is not a resumable ID gets a reset.
	Cursor string
	// Continue, in a Change, ignores Cursor and goes on from where the
	// subscriber is: the frames it has passed are not sent (again), every
	// frame after its position that matches the new topics is (replayed
	// when needed, then live), so the topics both subscriptions share have
	// no gap and no duplicate. Without it a Change starts where Cursor says.
	Continue bool
}

// Hello is the first event of every (re)subscription.
type Hello struct {
	Epoch      string `json:"epoch"`
	Head       string `json:"head"`
	Oldest     string `json:"oldest"`
	ServerTime int64  `json:"server_time"` // Unix ms
	RetryMS    int64  `json:"retry_ms"`
}

// HelloUnknown is a hello that also names the topics of its filter that are
// not known (see UnknownTopics). A transport sends it in place of the Hello
// when there are any, and the plain Hello — without the field — otherwise.
type HelloUnknown struct {
	Hello
	UnknownTopics []string `json:"unknown_topics"`
}

// Reset says in-band that a cursor cannot be honoured and where the
// subscriber continues instead (live, after Head).
type Reset struct {
	Reason    store.Reason `json:"reason"`
	Requested string       `json:"requested"` // the client's cursor, made safe to echo (QuoteRequested)
	Oldest    string       `json:"oldest"`
	Head      string       `json:"head"`
}

// Sink turns what a subscriber yields into bytes on one connection. The
// subscriber calls it from the goroutine that runs it, except Interrupt.
//
// Hello and Reset queue an event; queued bytes go out in front of the next
// Write or Heartbeat, or at Flush, so that a reconnect's hello and first
// replay chunk cost one write. Every method that writes returns the bytes it
// wrote (for the metrics) and fails with os.ErrDeadlineExceeded when its
// write deadline passes.
type Sink interface {
	// Hello queues the hello event; id is the ID to attach ("" for none).
	Hello(h Hello, id string)
	// Reset queues a reset event; id is the ID to attach.
	Reset(r Reset, id string)
	// Write sends what is queued and the frame events in parts (shared
	// bytes: never modified or kept), n events in all, in one write.
	Write(parts [][]byte, n int) (int, error)
	// Heartbeat sends what is queued and an idle heartbeat naming the head.
	Heartbeat(head string, now time.Time) (int, error)
	// Flush sends what is queued, if anything.
	Flush() (int, error)
	// Interrupt makes a write blocked on a client that stopped reading
	// return soon. Safe from any goroutine; called when the subscriber is
	// kicked, and never once Run has returned (the transport may then
	// release what the sink writes to: an HTTP/2 response writer cannot be
	// used after its handler returns).
	Interrupt()
}

// Subscriber is one admitted client of the hub, on any transport. Only the
// goroutine that runs it touches it, except kick and Change (any goroutine)
// and the fields the hub reads under its lock.
type Subscriber struct {
	h  *Hub
	ip netip.Addr
	// Retry is this connection's reconnection hint, jittered per connection
	// so that a restart does not bring every client back at once.
	Retry time.Duration

	enc    *Encoding
	sink   Sink
	sinkMu sync.Mutex // guards sink against kick, which reads it from another goroutine
	gone   <-chan struct{}
	topics map[string]struct{} // nil: every topic

	kickOnce   sync.Once
	done       chan struct{} // closed by kick
	kickReason string        // set before done is closed

	changeMu sync.Mutex
	change   chan struct{} // closed by Change; replaced when taken
	next     *Request      // the newest Change, guarded by changeMu

	lastWrite time.Time // monotonic; for the idle heartbeat
	parts     [][]byte  // scratch for coalescing, cleared after every write
	pos       uint64    // where live stopped for a Change: every seq up to it was passed
}

// Close unregisters s. It is idempotent; the transport calls it when the
// connection ends.
func (s *Subscriber) Close() { s.h.unregister(s) }

// Done is closed when s is kicked (shutdown); KickReason then says why.
func (s *Subscriber) Done() <-chan struct{} { return s.done }

// kick asks the subscriber to end. Safe from any goroutine; only the first
// reason counts.
func (s *Subscriber) kick(reason string) {
	s.kickOnce.Do(func() {
		s.kickReason = reason
		close(s.done)
		// A writer blocked on a client that stopped reading would notice
		// done only at its write deadline, past the drain window.
		s.sinkMu.Lock()
		defer s.sinkMu.Unlock()
		if s.sink != nil {
			s.sink.Interrupt()
		}
	})
}

// Change replaces the subscription of a running subscriber: Run sends a new
// hello (and reset), replays after the new cursor, and continues live with
// the new topics. Only the newest change counts. Safe from any goroutine.
func (s *Subscriber) Change(req Request) {
	s.changeMu.Lock()
	defer s.changeMu.Unlock()
	s.next = &req
	if s.change == nil {
		s.change = make(chan struct{})
	}
	select {
	case <-s.change:
	default:
		close(s.change)
	}
}

// Topics is the topic filter of the subscription s is serving (nil: every
// topic). Only the goroutine that runs s may call it: a Sink's Hello reads
// in it the filter of the subscription that hello starts — after a Change,
// the new one.
func (s *Subscriber) Topics() map[string]struct{} { return s.topics }

// changed returns the channel closed by Change.
func (s *Subscriber) changed() <-chan struct{} {
	s.changeMu.Lock()
	defer s.changeMu.Unlock()
	if s.change == nil {
		s.change = make(chan struct{})
	}
	return s.change
}

// takeChange returns the pending change, if any, and re-arms the channel.
func (s *Subscriber) takeChange() *Request {
	s.changeMu.Lock()
	defer s.changeMu.Unlock()
	r := s.next
	s.next = nil
	if r != nil {
		s.change = make(chan struct{})
	}
	return r
}

// Run serves s with req until it ends and returns why (a Disconnect
// reason), counted in the metrics: hello (and reset when the cursor cannot be
// honoured), the replay up to the head registered at, then live frames and
// heartbeats. enc is the transport's encoding, sink its writer, gone closed
// when the client goes away. After a kick (DisconnectShutdown) or at the end
// of the lifetime (DisconnectLifetime) whatever is queued in sink was not
// sent: the transport says goodbye its own way.
func (s *Subscriber) Run(req Request, enc *Encoding, sink Sink, gone <-chan struct{}) string {
	s.sinkMu.Lock()
	s.enc, s.sink, s.gone = enc, sink, gone
	s.sinkMu.Unlock()
	// A kick that came before the sink was known could not interrupt it;
	// nothing was written yet, so nothing is blocked, and run sees done.
	reason := s.loop(req)
	// A kick from now on (Shutdown kicks the subscribers it listed, and
	// this one may end before its turn) finds no sink to interrupt; one in
	// progress completes before Run returns.
	s.sinkMu.Lock()
	s.sink = nil
	s.sinkMu.Unlock()
	s.h.m.disconnectsBy[reason].Inc()
	return reason
}

func (s *Subscriber) loop(req Request) string {
	var lifetime <-chan time.Time
	if ml := s.h.cfg.MaxLifetime.D(); ml > 0 {
		t := time.NewTimer(jitter(ml, 0.9, 1.1))
		defer t.Stop()
		lifetime = t.C
	}
	for {
		reason, again := s.run(req, lifetime)
		if !again {
			return reason
		}
		req = *s.takeChange()
		if req.Continue {
			req.Cursor = s.h.IDString(s.pos)
		}
	}
}

// run is one subscription. again is true when a Change ended it.
func (s *Subscriber) run(req Request, lifetime <-chan time.Time) (reason string, again bool) {
	h := s.h
	s.topics = req.Topics
	h.catchUp(req.Cursor)

	// Position: the current tail node. Everything up to H comes from the
	// store, everything after H from the nodes linked after cur.
	cur := h.tail.Load()
	H := cur.last
	floor := H // live events with seq <= floor are skipped
	oldest := h.store.Oldest()

	var reset store.Reason
	var from store.ID
	replay := false
	if req.Cursor != "" {
		id, err := store.ParseID(req.Cursor)
		switch {
		case err != nil:
			reset = store.Malformed
		case id.Epoch != h.epoch:
			reset = store.UnknownEpoch
		case id.Seq > H:
			// Committed but not yet published to the hub (a poll client
			// saw it a moment ago): valid; skip live events up to it.
			if id.Seq <= h.store.Head().Seq {
				floor = id.Seq
			} else {
				reset = store.Future
			}
		case id.Seq+1 < oldest.Seq:
			reset = store.Expired
		case id.Seq < H:
			replay, from = true, id
		}
	}

	// First: hello (and reset), queued to go out with the first replay
	// chunk, or alone. hello carries the ID H when the subscriber starts
	// live without a cursor, and reset always does, so that a client that
	// reconnects before the next frame resumes from where this subscription
	// started instead of missing frames or repeating the reset.
	helloID := ""
	if req.Cursor == "" {
		helloID = h.IDString(H)
	}
	s.sink.Hello(Hello{
		Epoch:      epochString(h.epoch),
		Head:       h.IDString(H),
		Oldest:     oldest.String(),
		ServerTime: h.now().UnixMilli(),
		RetryMS:    s.Retry.Milliseconds(),
	}, helloID)
	if reset != store.OK {
		s.queueReset(reset, req.Cursor, H)
	}
	if replay {
		if reason := s.replay(from, H, req.Cursor); reason != "" {
			if reason == DisconnectError {
				// A failed read still owes the client what is queued: the
				// hello, with its retry hint, so that it comes back at the
				// pace the server suggests. A replay always has a cursor,
				// so that hello names no ID and the client's cursor stays
				// where it was: it resumes with no gap. A failed write
				// changes nothing: the stream ends either way.
				_ = s.count(s.sink.Flush())
			}
			return reason, false
		}
	}
	// Nothing (more) to send before the first live event: what is queued
	// goes now.
	if err := s.count(s.sink.Flush()); err != nil {
		return writeErrReason(err), false
	}
	return s.live(cur, floor, lifetime)
}

func (s *Subscriber) queueReset(reason store.Reason, requested string, head uint64) {
	h := s.h
	h.m.resetsBy[reason].Inc()
	// The requested ID is client input: it is sanitised for the event and
	// never logged, only its length.
	h.log.Debug("stream reset", "reason", string(reason), "requested_len", len(requested))
	s.sink.Reset(Reset{
		Reason:    reason,
		Requested: QuoteRequested(requested),
		Oldest:    h.store.Oldest().String(),
		Head:      h.IDString(head),
	}, h.IDString(head))
}

// catchUpper is a store shared by several instances (Redis): its head can
// be a moment behind a cursor another instance handed out, and CatchUp waits,
// briefly, until the store has delivered up to seq to this instance's commit
// hooks (and so to the hub). It reports whether it got there.
type catchUpper interface {
	CatchUp(seq uint64) bool
}

// catchUp lets a shared store deliver up to a cursor of this epoch that is
// ahead of the hub, so that a client moving between instances resumes with
// no gap and no reset instead of being told its cursor is in the future.
func (h *Hub) catchUp(cursor string) {
	cu, ok := h.store.(catchUpper)
	if !ok || cursor == "" {
		return
	}
	if id, err := store.ParseID(cursor); err == nil && id.Epoch == h.epoch && id.Seq > h.tail.Load().last {
		cu.CatchUp(id.Seq)
	}
}

// count records a write's bytes and its time, and returns its error.
func (s *Subscriber) count(n int, err error) error {
	if n > 0 {
		s.h.m.bytesSent.Add(float64(n))
		s.lastWrite = time.Now()
	}
	return err
}

// writeErrReason classifies a failed write.
func writeErrReason(err error) string {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return DisconnectWriteDeadline
	}
	return DisconnectClient
}

// live delivers nodes after cur until the subscriber ends or changes.
func (s *Subscriber) live(cur *node, floor uint64, lifetime <-chan time.Time) (string, bool) {
	h := s.h
	period := h.cfg.Heartbeat.D()
	beat := *h.beat.Load()
	change := s.changed()
	for {
		select {
		case <-cur.ready:
			var reason string
			if cur, reason = s.deliver(cur, floor); reason != "" {
				return reason, false
			}
		case <-beat:
			// The shared beat comes every period/4; a subscriber idle for
			// 3/4 of the period sends one, so heartbeats of an idle
			// subscriber are 3/4 to 1 period apart and no gap exceeds it.
			beat = *h.beat.Load()
			if time.Since(s.lastWrite) < period*3/4 {
				continue
			}
			if err := s.count(s.sink.Heartbeat(h.IDString(cur.last), h.now())); err != nil {
				return writeErrReason(err), false
			}
		case <-change:
			s.pos = max(cur.last, floor)
			return "", true
		case <-lifetime:
			return DisconnectLifetime, false
		case <-s.done:
			return s.kickReason, false
		case <-s.gone:
			return DisconnectClient, false
		}
	}
}

// deliver hands every matching event after cur to the sink in one call and
// returns the new position. The hot path: with 10k subscribers it runs 10k
// times per publish.
func (s *Subscriber) deliver(cur *node, floor uint64) (*node, string) {
	h := s.h
	if h.tail.Load().last-cur.last > uint64(h.cfg.QueueSize) {
		return cur, DisconnectSlow
	}
	parts := s.parts[:0]
	count := 0
	for n := cur.next.Load(); n != nil; n = n.next.Load() {
		if n.first != cur.last+1 {
			return cur, DisconnectResync
		}
		cur = n
		x := n.encoded(s.enc)
		if s.topics == nil && n.first > floor {
			parts = append(parts, x.all)
			count += len(n.frames)
			continue
		}
		for i := range n.frames {
			f := &n.frames[i]
			if f.ID.Seq <= floor {
				continue
			}
			if s.topics != nil {
				if _, ok := s.topics[f.Topic]; !ok {
					continue
				}
			}
			parts = append(parts, x.event(i))
			count++
		}
	}
	var err error
	if count > 0 {
		err = s.count(s.sink.Write(parts, count))
		h.m.framesSent.Add(float64(count))
		h.m.queueDepth.Observe(float64(count))
	}
	clear(parts) // do not keep old nodes' bytes alive
	s.parts = parts[:0]
	if err != nil {
		return cur, writeErrReason(err)
	}
	return cur, ""
}

// ParseTopics turns topics query values into a filter: comma-separated
// items, repeated values merged, empty items ignored, at most 256 items (the
// rest ignored). No items means every topic (nil). Topics that do not exist
// simply match nothing.
func ParseTopics(vals []string) map[string]struct{} {
	var set map[string]struct{}
	n := 0
	for _, v := range vals {
		for item := range strings.SplitSeq(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" || n >= maxTopics {
				continue
			}
			n++
			if set == nil {
				set = map[string]struct{}{}
			}
			if len(item) <= store.MaxTopicLen {
				set[item] = struct{}{}
			}
		}
	}
	return set
}

// UnknownTopics returns the topics of a filter for which known is false,
// sorted; nil when all are known, for an every-topic filter (nil) and when
// known is nil (every topic is known).
func UnknownTopics(topics map[string]struct{}, known func(string) bool) []string {
	if known == nil {
		return nil
	}
	var out []string
	for topic := range topics {
		if !known(topic) {
			out = append(out, topic)
		}
	}
	slices.Sort(out)
	return out
}
