// Package hub fans committed frames out to subscribers, whatever their
// transport. It knows nothing of HTTP, SSE or WebSocket: a transport (the SSE
// writer in dashboard/sse, the WebSocket writer) admits a subscriber with
// Subscribe, runs it with a Sink that turns what it yields into bytes on one
// connection, and closes it.
//
// # Design
//
// The store calls Publish after every commit. Publish appends the committed
// frames as one node to a shared, append-only linked list and closes the
// previous node's ready channel: one close wakes every subscriber, however
// many there are. Publish never waits for a subscriber and never takes a lock
// a subscriber holds while writing. A node holds the frames' stored JSON; each
// transport's event encoding of a node is built once, by the first subscriber
// that needs it, and shared by all (see Encoding).
//
// Every subscriber runs in a goroutine of its transport. When woken it walks
// the nodes it has not seen, keeps the events that match its topics and hands
// all of them to its Sink in one call, which writes them in one write
// (coalescing: a subscriber that fell behind by k ticks catches up with one
// syscall, not k).
//
// The list is the per-subscriber bounded queue: a subscriber more than
// cfg.QueueSize frames behind the head when it wakes is disconnected (counted
// as "slow") and resumes losslessly from the store with its last ID; a write
// that misses the transport's write deadline disconnects it too
// ("write_deadline"). Memory held for laggards is shared — the nodes between
// the slowest subscriber and the head — and bounded by the write deadline
// times the publish rate.
//
// Replay happens in the subscriber's own goroutine (never in the hub): the
// subscriber takes the current tail node as its position H, replays
// (lastID, H] from the store in bounded chunks (no read is held while
// writing), then continues with the nodes after H. Because H is the last seq
// of the node it waits on, the replay/live seam has neither gap nor
// duplicate. Subscribers resuming from the same cursor to the same head with
// the same topics and encoding share the first chunk, read and encoded once
// (replayCache): thousands of clients coming back from the same place cost
// one store read, not thousands.
package hub

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"livedash/config"
	"livedash/dashboard/clientip"
	"livedash/dashboard/store"
)

// Options are the hub's collaborators. All fields are optional.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics are kept but not registered
	Now        func() time.Time      // wall clock for server_time and heartbeats; default time.Now
	// ReplaySlots bounds the replays that read or write at once (its
	// capacity); default one slot per core. Tests pass their own to hold
	// slots.
	ReplaySlots chan struct{}
}

// Hub is the fan-out. All methods are safe for concurrent use.
type Hub struct {
	store store.Store
	cfg   config.Stream
	log   *slog.Logger
	now   func() time.Time
	m     *metrics
	epoch uint64

	// tail is the newest node. Publish replaces it; subscribers load it to
	// learn the head. Only Publish writes it (serialised by pubMu).
	tail  atomic.Pointer[node]
	pubMu sync.Mutex

	encMu     sync.Mutex
	encodings int // registered with NewEncoding

	replaySem chan struct{} // bounds concurrent replays (see Subscriber.replay)
	replays   replayCache   // first replay chunks shared by subscribers resuming alike

	// beat is closed and replaced every Heartbeat/4 by one timer for all
	// subscribers. A timer per subscriber would be simpler, but a goroutine
	// parked in a select on a timer's channel adds the timer to the runtime
	// heap and removes it again on every wake-up, once per publish for each
	// of 10,000 subscribers.
	beat      atomic.Pointer[chan struct{}]
	beatMu    sync.Mutex // guards beatTimer and beatStop
	beatTimer *time.Timer
	beatStop  bool

	mu         sync.Mutex
	subs       map[*Subscriber]struct{}
	perIP      map[netip.Addr]int
	closing    bool          // Shutdown was called: admit nobody
	idle       chan struct{} // closed when closing && no subscriber is left
	idleClosed bool
}

// New returns a hub for st. Register h.Publish with st.OnCommit before
// anything is appended: frames committed between New and that registration
// are not in the hub, and subscribers waiting across that gap are
// disconnected (reason "resync") to resume from the store. Zero fields of cfg
// take the configuration's defaults.
func New(st store.Store, cfg config.Stream, opts Options) *Hub {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	def := config.Default().Stream
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = def.QueueSize
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = def.WriteTimeout
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = def.Heartbeat
	}
	if cfg.Retry <= 0 {
		cfg.Retry = def.Retry
	}
	h := &Hub{
		store: st,
		cfg:   cfg,
		log:   opts.Logger,
		now:   opts.Now,
		m:     newMetrics(opts.Registerer),
		epoch: st.Epoch(),
		subs:  map[*Subscriber]struct{}{},
		perIP: map[netip.Addr]int{},
		idle:  make(chan struct{}),
		// Replays are CPU-bound (store read, encoding, loopback write): one
		// per core, each yielding before its chunk (Subscriber.replay),
		// keeps live deliveries from queuing behind a reconnect storm.
		replaySem: opts.ReplaySlots,
	}
	if h.replaySem == nil {
		h.replaySem = make(chan struct{}, runtime.GOMAXPROCS(0))
	}
	beat := make(chan struct{})
	h.beat.Store(&beat)
	h.beatMu.Lock()
	h.beatTimer = time.AfterFunc(h.cfg.Heartbeat.D()/4, h.tick)
	h.beatMu.Unlock()
	head := st.Head().Seq
	h.tail.Store(&node{first: head + 1, last: head, ready: make(chan struct{})})
	return h
}

// Config is the hub's stream configuration, defaults filled in.
func (h *Hub) Config() config.Stream { return h.cfg }

// NewEncoding registers a transport's frame encoding. Call it once per
// transport, before serving; at most a few transports can be registered.
func (h *Hub) NewEncoding(fn EncodeFunc) *Encoding {
	h.encMu.Lock()
	defer h.encMu.Unlock()
	if h.encodings >= maxEncodings {
		panic("hub: too many encodings")
	}
	e := &Encoding{i: h.encodings, encode: fn}
	h.encodings++
	return e
}

// Publish hands committed frames to every subscriber. It is meant to be
// registered with Store.OnCommit: it runs with the store's append lock held,
// so it only links one node and closes one channel — it never blocks on a
// subscriber. Frames must be in commit order with consecutive seqs.
func (h *Hub) Publish(frames []store.Frame) {
	if len(frames) == 0 {
		return
	}
	n := &node{
		first:  frames[0].ID.Seq,
		last:   frames[len(frames)-1].ID.Seq,
		frames: make([]store.Frame, len(frames)),
		ready:  make(chan struct{}),
	}
	for i, f := range frames {
		f.Samples = nil // the node keeps only what transports send
		n.frames[i] = f
	}
	h.pubMu.Lock()
	old := h.tail.Load()
	old.next.Store(n)
	h.tail.Store(n)
	h.pubMu.Unlock()
	close(old.ready)
	h.m.published.Add(float64(len(frames)))
}

// tick wakes every subscriber to check whether it owes a heartbeat.
func (h *Hub) tick() {
	next := make(chan struct{})
	close(*h.beat.Swap(&next))
	h.beatMu.Lock()
	defer h.beatMu.Unlock()
	if !h.beatStop {
		h.beatTimer.Reset(h.cfg.Heartbeat.D() / 4)
	}
}

// Streams is the number of subscribers currently registered, over every
// transport.
func (h *Hub) Streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Reasons a subscriber is turned away (livedash_stream_rejected_total{reason}).
const (
	RejectMaxStreams = "max_streams"
	RejectPerIP      = "max_streams_per_ip"
	RejectShutdown   = "shutdown"
)

// Subscribe admits a subscriber from the client address ip (a transport
// passes clientip.Of of its request), or says why not (one of the Reject
// reasons) and counts the rejection. The per-client limit counts ip under
// clientip.Key, so an IPv6 /64 shares one quota. Admission and the
// per-client count share one lock so that limits hold exactly under a
// connection storm. The caller runs the subscriber (Run) and must Close it.
func (h *Hub) Subscribe(ip netip.Addr) (*Subscriber, string) {
	ip = clientip.Key(ip)
	s := &Subscriber{h: h, ip: ip, done: make(chan struct{}), Retry: jitter(h.cfg.Retry.D(), 1, 1.5)}
	h.mu.Lock()
	defer h.mu.Unlock()
	reason := ""
	switch {
	case h.closing:
		reason = RejectShutdown
	case h.cfg.MaxStreams > 0 && len(h.subs) >= h.cfg.MaxStreams:
		reason = RejectMaxStreams
	case h.cfg.MaxStreamsPerIP > 0 && h.perIP[ip] >= h.cfg.MaxStreamsPerIP:
		reason = RejectPerIP
	}
	if reason != "" {
		h.m.rejected.WithLabelValues(reason).Inc()
		return nil, reason
	}
	h.subs[s] = struct{}{}
	h.perIP[ip]++
	h.m.connected.Inc()
	return s, ""
}

// RetryLater is the retry hint for a client turned away for reason: much
// later and spread out when over a limit, the usual pace when shutting down
// (a restarted server will be there).
func (h *Hub) RetryLater(reason string) time.Duration {
	if reason == RejectShutdown {
		return jitter(h.cfg.Retry.D(), 1, 1.5)
	}
	return jitter(h.cfg.Retry.D(), 10, 20)
}

func (h *Hub) unregister(s *Subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	if h.perIP[s.ip]--; h.perIP[s.ip] <= 0 {
		delete(h.perIP, s.ip)
	}
	h.m.connected.Dec()
	h.checkIdle()
}

// checkIdle closes idle once, when closing and no subscriber is left. h.mu
// is held.
func (h *Hub) checkIdle() {
	if h.closing && len(h.subs) == 0 && !h.idleClosed {
		h.idleClosed = true
		close(h.idle)
	}
}

// Shutdown admits no new subscribers and kicks the open ones spread evenly,
// in random order, over cfg.DrainWindow, so that clients do not all come back
// in the same instant (each transport says goodbye its own way: a retry:
// hint, a close code). It returns when every subscriber is closed, or with
// ctx's error when ctx ends first (the remaining ones are then kicked at
// once). Call it from http.Server.RegisterOnShutdown or before
// http.Server.Shutdown: that alone waits forever for streams to go idle, and
// does not see hijacked connections at all.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if !h.closing {
		h.closing = true
		h.checkIdle()
	}
	subs := make([]*Subscriber, 0, len(h.subs))
	for s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	rand.Shuffle(len(subs), func(i, j int) { subs[i], subs[j] = subs[j], subs[i] })

	window := h.cfg.DrainWindow.D()
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for i, s := range subs {
		due := start.Add(time.Duration(int64(window) * int64(i) / int64(len(subs))))
		if d := time.Until(due); d > 0 {
			t.Reset(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				for _, s := range subs[i:] {
					s.kick(DisconnectShutdown)
				}
				return ctx.Err()
			}
		}
		s.kick(DisconnectShutdown)
	}
	// Every subscriber has been told to close: no more heartbeats.
	h.beatMu.Lock()
	h.beatStop = true
	h.beatTimer.Stop()
	h.beatMu.Unlock()
	select {
	case <-h.idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Recovered logs and counts a panic that a transport recovered in a
// subscriber's goroutine (livedash_stream_panics_total{transport}); the
// transport then ends that connection, and every other subscriber goes on.
// Call it from the deferred recover.
func (h *Hub) Recovered(transport string, v any) {
	h.m.panics.WithLabelValues(transport).Inc()
	h.log.Error("stream panicked; closing it", "transport", transport, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
}

// jitter returns d scaled by a random factor in [lo, hi).
func jitter(d time.Duration, lo, hi float64) time.Duration {
	return time.Duration(float64(d) * (lo + rand.Float64()*(hi-lo)))
}

// IDString formats a seq of this hub's epoch as a wire ID.
func (h *Hub) IDString(seq uint64) string { return store.ID{Epoch: h.epoch, Seq: seq}.String() }

func epochString(e uint64) string {
	s := strconv.FormatUint(e, 16)
	for len(s) < 16 {
		s = "0" + s
	}
	return s
}
