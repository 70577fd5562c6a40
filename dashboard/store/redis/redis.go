// Package redis is the Redis Streams implementation of store.Store, for
// running several livedash instances on one ring: any instance serves any
// client, and a cursor taken on one resumes on another with no gap and no
// duplicate.
//
// # Client
//
// It uses github.com/redis/go-redis/v9, the client the Redis project
// maintains: its options map one to one onto livedash's configuration (pool
// size, dial, read and write timeouts, password and TLS from a redis:// or
// rediss:// URL), it runs scripts by EVALSHA and loads them only when Redis
// does not know them (after a restart), and it sizes the socket timeout of a
// blocking XREAD itself. rueidis pipelines many small concurrent commands
// automatically; livedash sends one script per collector tick, so that
// strength would not show, and go-redis is the smaller surface.
//
// # Seqs, IDs and the one atomic step
//
// The ring is one stream whose entry IDs are "<seq>-0", seq being livedash's
// global sequence number, so a range read from a cursor is XRANGE from
// "<cursor+1>-0" and never a scan. The epoch lives in a hash beside the
// stream, created once by whichever instance starts first (a script that
// sets it only when absent). One Lua script per Append — loaded once,
// called by EVALSHA, one round trip whatever the number of frames — checks
// the epoch, assigns the next seqs, stores every frame with its final wire
// JSON (the client sends the JSON after the ID and the script prefixes
// `{"id":"<epoch>-<seq>`), trims to the retention and moves head and oldest.
// Redis runs scripts one at a time, so seqs are consecutive across every
// instance. See scripts.go for the keys and the scripts.
//
// # The tail and the commit hooks
//
// Every Store runs one goroutine that reads the stream with XREAD BLOCK from
// the last ID it saw (never "$", which loses what is appended between two
// reads) and, for each commit in stream order, updates the bounds readers
// use, then calls the OnCommit hooks, then closes Changed's channel. Every
// instance's frames reach the hooks that way, this instance's own included,
// so each frame reaches them exactly once and every instance sees the same
// order. Append returns once its frames are durable in Redis and the tail
// has delivered them here, so a frame an Append returned is visible to
// readers as it is on bbolt; if the tail does not get there within
// Options.DeliverTimeout, Append returns anyway (the frames are committed) and
// the tail delivers them when it catches up.
//
// # Failures
//
//   - Redis unreachable at start: Open retries with backoff, logging the
//     URL (password redacted) and each error, until Redis answers or its
//     context ends; with Options.Require it returns the first error instead.
//   - Redis lost while running: Appends fail at once (no retries, nothing
//     buffered) and are counted; Err reports the failure (readiness); the
//     tail reconnects with backoff; everything resumes when Redis returns
//     with its data.
//   - Redis back without its data, or behind frames this instance already
//     delivered: the epoch this Store serves is gone. It becomes Lost: Err
//     returns ErrEpochLost, Appends and reads fail with it, and Lost's
//     channel closes. A Store's epoch is fixed for its life, so the owner
//     opens a new Store (a new epoch) and clients resuming with IDs of the
//     old one get reset unknown_epoch — never IDs that name other frames.
//   - A tail so far behind that frames it had not read were trimmed away
//     (beyond the retention plus the slack) cannot give the hooks
//     consecutive seqs; that Store becomes Lost too.
package redis

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"livedash/dashboard/store"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrEpochLost: the epoch this Store serves no longer exists in Redis (Redis
// lost its data, or came back behind frames this instance delivered). The
// Store cannot serve or append any more; open a new one.
var ErrEpochLost = errors.New("redis store: the ring's epoch is gone from Redis (Redis lost its data); a new store is needed")

// Options configure Open. Zero values mean the documented defaults.
type Options struct {
	// URL is redis://[[user]:password@]host[:port][/db] or rediss://… (TLS).
	URL string
	// KeyPrefix names the ring's keys ({prefix}:frames …). Default "livedash".
	KeyPrefix string
	// Node names this instance; it is recorded with each commit (Nodes).
	Node string

	MaxFrames int           // retention by count; default 100000
	MaxAge    time.Duration // retention by age; 0 = none
	// MaxAgeTrim bounds how many frames one append drops for age, so a clock
	// that jumps forward drains the ring over several appends. Default 2000.
	MaxAgeTrim int
	// TailSlack is how many frames the stream keeps below the oldest
	// retained one (and below each commit's first frame), so every
	// instance's tail can still read frames a commit dropped before that
	// tail got to them. Readers never serve them. Default 1000.
	TailSlack int

	PoolSize     int           // connections for appends and reads; default 10
	DialTimeout  time.Duration // default 2s
	ReadTimeout  time.Duration // default 2s
	WriteTimeout time.Duration // default 2s
	// Require makes Open fail at once when Redis does not answer, instead of
	// retrying until it does.
	Require bool
	// RetryMax caps the backoff between Open's attempts and the tail's
	// reconnects. Default 10s.
	RetryMax time.Duration
	// DeliverTimeout bounds how long Append waits for the tail to deliver
	// its frames to the hooks. Default 10s.
	DeliverTimeout time.Duration
	// TailBlock is how long one XREAD blocks; when it ends with nothing read
	// the tail checks the epoch. Default 1s.
	TailBlock time.Duration
	// CatchUpTimeout bounds how long a read (or CatchUp) waits for the tail
	// when its cursor is ahead of this store but not of the ring: another
	// instance handed it out a moment before this one's tail got there.
	// Default 2s.
	CatchUpTimeout time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: no metrics registered
	Now        func() time.Time      // wall clock for ts and age; default time.Now

	beforeRead func() // tests: called by the tail before each XREAD
}

func (o *Options) setDefaults() {
	if o.KeyPrefix == "" {
		o.KeyPrefix = "livedash"
	}
	if o.MaxFrames <= 0 {
		o.MaxFrames = 100000
	}
	if o.MaxAgeTrim <= 0 {
		o.MaxAgeTrim = 2000
	}
	if o.TailSlack <= 0 {
		o.TailSlack = 1000
	}
	if o.PoolSize <= 0 {
		o.PoolSize = 10
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 2 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 2 * time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 10 * time.Second
	}
	if o.DeliverTimeout <= 0 {
		o.DeliverTimeout = 10 * time.Second
	}
	if o.TailBlock <= 0 {
		o.TailBlock = time.Second
	}
	if o.CatchUpTimeout <= 0 {
		o.CatchUpTimeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// keys are the ring's Redis keys.
type keys struct{ meta, frames, latest, nodes string }

func (k keys) all() []string { return []string{k.meta, k.frames, k.latest, k.nodes} }

func newKeys(prefix string) keys {
	p := "{" + prefix + "}:"
	return keys{meta: p + "meta", frames: p + "frames", latest: p + "latest", nodes: p + "nodes"}
}

// bounds are the head and oldest as of the last delivered commit; oldest is
// head+1 when no frame is retained. They move together, so readers load one
// pointer.
type bounds struct{ head, oldest uint64 }

// NodeSeen is an instance that appended to the ring, as far as retention
// remembers: Seq is the newest retained frame it appended.
type NodeSeen struct {
	Name string `json:"name"`
	Seq  uint64 `json:"seq"`
	// At is when this Store saw that frame committed; zero for nodes known
	// only from Redis at start.
	At time.Time `json:"at,omitzero"`
}

// Store is a ring of frames in one Redis Stream. All methods are safe for
// concurrent use.
type Store struct {
	opts     Options
	log      *slog.Logger
	k        keys
	rdb      *goredis.Client // appends and reads
	tailc    *goredis.Client // the tail's blocking reads
	url      string          // redacted, for messages
	epoch    uint64
	epochHex string
	instance string // this Store's commit-token prefix
	commits  atomic.Uint64

	bnd atomic.Pointer[bounds]

	hookMu sync.Mutex
	hooks  []func([]store.Frame)

	pmu     sync.Mutex
	pending map[string]*pendingCommit

	mu      sync.Mutex
	latest  map[string]store.Frame
	nodes   map[string]NodeSeen
	changed chan struct{}
	lastErr error // last Append that reached Redis
	tailErr error // the tail's connection, while it is down
	lostErr error // non-nil once Lost
	// failed appends not logged yet, and when the last was (rate limit)
	failedSinceLog int
	failLoggedAt   time.Time
	closed         bool
	lost           chan struct{}
	stop           chan struct{} // closed by Close
	started        chan struct{} // closed by Start: the tail delivers from then on
	startMu        sync.Once
	tailDone       chan struct{}
	size           atomic.Int64
	redisTop       atomic.Uint64 // Redis's head as last heard of, for the lag in frames

	m *metrics

	beforeRead func() // tests: called before each XREAD of the tail
}

// Open connects to Redis, creates or adopts the ring's epoch, loads the
// bounds, the newest frame of every topic and the nodes seen, and starts the
// tail, which delivers commits once Start is called (or the first Append).
// While Redis does not answer it retries with backoff (logging the URL,
// password redacted, and the error) until ctx ends, unless opts.Require is
// set, in which case it returns the first error.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts.setDefaults()
	ro, err := clientOptions(opts)
	if err != nil {
		return nil, err
	}
	setClientLogger(opts.Logger)
	s := &Store{
		opts:       opts,
		log:        opts.Logger,
		k:          newKeys(opts.KeyPrefix),
		url:        RedactURL(opts.URL),
		instance:   fmt.Sprintf("%016x", randUint64()),
		pending:    map[string]*pendingCommit{},
		latest:     map[string]store.Frame{},
		nodes:      map[string]NodeSeen{},
		changed:    make(chan struct{}),
		lost:       make(chan struct{}),
		stop:       make(chan struct{}),
		started:    make(chan struct{}),
		tailDone:   make(chan struct{}),
		beforeRead: opts.beforeRead,
	}
	// An empty ring until the first load: the metrics read the bounds, and
	// they are gathered while Open still retries (the command's standby
	// serves /metrics meanwhile).
	s.bnd.Store(&bounds{oldest: 1})
	s.m = newMetrics(opts.Registerer, s)
	s.rdb = goredis.NewClient(ro)
	tro := *ro
	tro.PoolSize, tro.MinIdleConns = 1, 0
	// A blocking XREAD holds the socket for TailBlock; the read deadline
	// must outlast it.
	tro.ReadTimeout = opts.TailBlock + opts.ReadTimeout
	s.tailc = goredis.NewClient(&tro)

	if err := s.connect(ctx); err != nil {
		_ = s.rdb.Close()
		_ = s.tailc.Close()
		s.m.unregister()
		return nil, err
	}
	go s.tail()
	return s, nil
}

// Start lets the tail deliver commits to the hooks. Until then the store
// serves the ring as of Open and delivers nothing, so that parts which read
// the head when they are built and then register a hook (the hub, the API)
// miss no commit in between: register every hook, then call Start. The
// first Append starts the tail too. Calling Start again does nothing.
func (s *Store) Start() { s.startMu.Do(func() { close(s.started) }) }

// clientOptions turns opts into go-redis options: the URL's address,
// database, user, password and TLS, and the store's pool and timeouts. It
// rejects URLs that are not redis:// or rediss://, and query parameters
// (every setting has its own option).
func clientOptions(opts Options) (*goredis.Options, error) {
	opts.setDefaults()
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return nil, fmt.Errorf("redis store: %q is not a redis:// or rediss:// URL", RedactURL(opts.URL))
	}
	if u.RawQuery != "" {
		return nil, fmt.Errorf("redis store: URL %s: query parameters are not accepted; use the store's options", RedactURL(opts.URL))
	}
	ro, err := goredis.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("redis store: URL %s: %w", RedactURL(opts.URL), errors.New(redactErr(err.Error(), opts.URL)))
	}
	ro.PoolSize = opts.PoolSize
	ro.DialTimeout = opts.DialTimeout
	ro.ReadTimeout = opts.ReadTimeout
	ro.WriteTimeout = opts.WriteTimeout
	ro.PoolTimeout = opts.ReadTimeout + opts.WriteTimeout
	// An append whose reply is lost may have been committed: retrying it
	// could commit the frames twice. Nothing is retried; the caller sees
	// the error and the next tick tries afresh.
	ro.MaxRetries = -1
	ro.DialerRetries = 1
	ro.Protocol = 2 // replies as plain arrays, parsed without maps
	ro.DisableIdentity = true
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	ro.ClientName = "livedash"
	return ro, nil
}

// connect runs the init script until it succeeds (or once, with Require),
// then loads the bounds, the latest frames and the nodes seen.
func (s *Store) connect(ctx context.Context) error {
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.load(ctx)
		if err == nil {
			if attempt > 1 {
				s.log.Info("connected to Redis", "url", s.url, "attempts", attempt)
			}
			return nil
		}
		if errors.Is(err, errBadData) {
			return err
		}
		err = fmt.Errorf("redis store %s: %w", s.url, errors.New(redactErr(err.Error(), s.opts.URL)))
		if s.opts.Require {
			return fmt.Errorf("%w (store.redis.require is set: not retrying)", err)
		}
		wait := jitter(backoff)
		s.log.Error("Redis unreachable; retrying", "url", s.url, "attempt", attempt, "retry_in", wait.Round(time.Millisecond).String(), "err", err)
		s.m.connectFailed()
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %w)", err, context.Cause(ctx))
		case <-time.After(wait):
		}
		backoff = min(2*backoff, s.opts.RetryMax)
	}
}

var errBadData = errors.New("redis store: unexpected data in Redis")

func (s *Store) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.DialTimeout+s.opts.ReadTimeout+s.opts.WriteTimeout)
	defer cancel()
	start := time.Now()
	res, err := initScript.Run(ctx, s.rdb, s.k.all(), fmt.Sprintf("%016x", randUint64())).Slice()
	s.m.roundTrip("init", time.Since(start))
	if err != nil {
		return err
	}
	if len(res) != 6 {
		return fmt.Errorf("%w: init returned %d values", errBadData, len(res))
	}
	ehex, _ := res[0].(string)
	epoch, err := strconv.ParseUint(ehex, 16, 64)
	if err != nil || len(ehex) != 16 || epoch == 0 {
		return fmt.Errorf("%w: epoch %q in %s", errBadData, ehex, s.k.meta)
	}
	head, err1 := parseSeq(res[1])
	oldest, err2 := parseSeq(res[2])
	if err1 != nil || err2 != nil || oldest == 0 || oldest > head+1 {
		return fmt.Errorf("%w: head %v oldest %v in %s", errBadData, res[1], res[2], s.k.meta)
	}
	s.epoch, s.epochHex = epoch, ehex
	s.bnd.Store(&bounds{head: head, oldest: oldest})
	clear(s.latest) // an earlier attempt may have filled them in part
	clear(s.nodes)
	s.redisTop.Store(head)
	if created, _ := res[3].(int64); created == 1 {
		s.log.Warn("new ring epoch in Redis", "url", s.url, "prefix", s.opts.KeyPrefix, "epoch", ehex)
	}
	for _, kv := range pairs(res[5]) {
		if seq, err := strconv.ParseUint(kv[1], 10, 64); err == nil && seq >= oldest {
			s.nodes[kv[0]] = NodeSeen{Name: kv[0], Seq: seq}
		}
	}
	if err := s.loadLatest(ctx, pairs(res[4]), oldest, head); err != nil {
		return err
	}
	s.log.Info("store opened", "url", s.url, "prefix", s.opts.KeyPrefix, "epoch", ehex,
		"head", head, "oldest", oldest, "frames", s.Len(), "node", s.opts.Node)
	return nil
}

// maxLatestTopics bounds the topics loaded at start.
const maxLatestTopics = 4096

// loadLatest fetches the newest frame of every topic in the latest hash that
// is still retained, in one pipelined round trip.
func (s *Store) loadLatest(ctx context.Context, kvs [][2]string, oldest, head uint64) error {
	type want struct {
		topic string
		seq   uint64
	}
	var ws []want
	for _, kv := range kvs {
		seq, err := strconv.ParseUint(kv[1], 10, 64)
		if err != nil || seq < oldest || seq > head {
			continue
		}
		ws = append(ws, want{kv[0], seq})
		if len(ws) == maxLatestTopics {
			break
		}
	}
	if len(ws) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*goredis.Cmd, len(ws))
	for i, w := range ws {
		id := entryID(w.seq)
		cmds[i] = pipe.Do(ctx, "XRANGE", s.k.frames, id, id)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	for i, c := range cmds {
		es, err := c.Slice()
		if err != nil || len(es) != 1 {
			continue // trimmed meanwhile
		}
		e, err := parseEntry(es[0])
		if err != nil || e.topic != ws[i].topic || !s.ownJSON(e.json) {
			continue
		}
		s.latest[e.topic] = store.Frame{ID: store.ID{Epoch: s.epoch, Seq: e.seq}, Topic: e.topic, TS: e.ts, JSON: []byte(e.json)}
	}
	return nil
}

func pairs(v any) [][2]string {
	a, _ := v.([]any)
	out := make([][2]string, 0, len(a)/2)
	for i := 0; i+1 < len(a); i += 2 {
		k, _ := a[i].(string)
		v, _ := a[i+1].(string)
		out = append(out, [2]string{k, v})
	}
	return out
}

func parseSeq(v any) (uint64, error) {
	switch x := v.(type) {
	case string:
		return strconv.ParseUint(x, 10, 64)
	case int64:
		if x < 0 {
			return 0, fmt.Errorf("negative seq %d", x)
		}
		return uint64(x), nil
	}
	return 0, fmt.Errorf("seq of type %T", v)
}

func entryID(seq uint64) string { return strconv.FormatUint(seq, 10) + "-0" }

func randUint64() uint64 {
	var b [8]byte
	for {
		if _, err := crand.Read(b[:]); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// jitter spreads d over [d/2, d) so instances started together do not
// retry in step.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// RedactURL returns u with its password replaced, for logs and errors.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

// redactErr removes the password of rawURL from an error text, in case a
// library quoted the URL.
func redactErr(text, rawURL string) string {
	p, err := url.Parse(rawURL)
	if err != nil || p.User == nil {
		return text
	}
	if pw, ok := p.User.Password(); ok && pw != "" {
		return strings.ReplaceAll(text, pw, "xxxxx")
	}
	return text
}

// Close stops the tail and closes the connections. Appends after Close fail
// with ErrClosed; a second Close returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	s.mu.Unlock()
	// Closing the tail's client ends a blocked XREAD at once.
	_ = s.tailc.Close()
	<-s.tailDone
	err := s.rdb.Close()
	s.m.unregister()
	return err
}

// URL is the Redis URL with its password redacted.
func (s *Store) URL() string { return s.url }

// Epoch is the ring's epoch, fixed for the life of the Store.
func (s *Store) Epoch() uint64 { return s.epoch }

// Head is the ID of the newest frame this Store has delivered to its hooks.
func (s *Store) Head() store.ID { return store.ID{Epoch: s.epoch, Seq: s.bnd.Load().head} }

// Oldest is the ID of the oldest retained frame, or Head when none is.
func (s *Store) Oldest() store.ID {
	b := s.bnd.Load()
	if b.oldest > b.head {
		return store.ID{Epoch: s.epoch, Seq: b.head}
	}
	return store.ID{Epoch: s.epoch, Seq: b.oldest}
}

// Len is the number of retained frames: seqs are contiguous from oldest to
// head because retention only ever drops the oldest.
func (s *Store) Len() int {
	b := s.bnd.Load()
	if b.oldest > b.head {
		return 0
	}
	return int(b.head - b.oldest + 1)
}

// Size is the stream's memory in Redis as last measured (MEMORY USAGE, taken
// by the tail when idle), slack included.
func (s *Store) Size() int64 { return s.size.Load() }

// Err is nil while the last Append succeeded and the tail is connected;
// otherwise the reason (readiness). ErrEpochLost once Lost, ErrClosed once
// closed.
func (s *Store) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return store.ErrClosed
	case s.lostErr != nil:
		return s.lostErr
	case s.lastErr != nil:
		return s.lastErr
	}
	return s.tailErr
}

// Lost returns a channel closed when the Store's epoch is gone from Redis
// (see ErrEpochLost): the owner should close it and open a new Store.
func (s *Store) Lost() <-chan struct{} { return s.lost }

// markLost makes the Store Lost with err (wrapping ErrEpochLost), once.
func (s *Store) markLost(err error) {
	s.mu.Lock()
	if s.lostErr != nil {
		s.mu.Unlock()
		return
	}
	s.lostErr = err
	close(s.lost)
	s.mu.Unlock()
	s.log.Error("the ring this store serves is gone from Redis; the store must be reopened (clients resuming get reset unknown_epoch)",
		"url", s.url, "epoch", s.epochHex, "err", err)
	s.m.lostEpoch()
}

func (s *Store) lostOrClosed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	return s.lostErr
}

// OnCommit registers fn, called by the tail after every commit — this
// instance's and every other's — with the committed frames, in commit order
// with consecutive seqs. fn runs on the tail goroutine: it must not block,
// must not call Append (Append waits for the tail) and must not read after a
// cursor beyond the head (the read would wait for the tail). Register hooks
// before Start and the first Append.
func (s *Store) OnCommit(fn func([]store.Frame)) {
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	s.hooks = append(s.hooks, fn)
}

// Changed returns a channel closed after the next commit this Store delivers,
// once the commit hooks have run.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Latest returns the newest retained frame of topic, without Samples. At
// start it is loaded from Redis (which records every topic's newest frame);
// afterwards the tail keeps it.
func (s *Store) Latest(topic string) (store.Frame, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.latest[topic]
	return f, ok
}

// Topics returns the topics that have a latest frame.
func (s *Store) Topics() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.latest))
	for t := range s.latest {
		out = append(out, t)
	}
	return out
}

// CatchUp waits until this store has delivered up to seq, when the ring in
// Redis holds it: a cursor handed out by another instance can be a moment
// ahead of this one's tail, and must resume here all the same (no sticky
// sessions). It answers at once — false — when seq is beyond the ring's head
// (a cursor from the future), and gives up (false) after
// Options.CatchUpTimeout. Before Start nothing is delivered, so it answers
// with what the store holds.
func (s *Store) CatchUp(seq uint64) bool {
	if seq <= s.bnd.Load().head {
		return true
	}
	select {
	case <-s.started:
	default:
		return false
	}
	if seq > s.redisTop.Load() {
		ctx, cancel := s.ctx()
		t0 := time.Now()
		h, err := s.rdb.HGet(ctx, s.k.meta, "head").Uint64()
		cancel()
		s.m.roundTrip("check", time.Since(t0))
		if err != nil || seq > h {
			return false
		}
		s.noteTop(h)
	}
	timer := time.NewTimer(s.opts.CatchUpTimeout)
	defer timer.Stop()
	for {
		ch := s.Changed()
		if seq <= s.bnd.Load().head {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return seq <= s.bnd.Load().head
		case <-s.stop:
			return false
		case <-s.lost:
			return false
		}
	}
}

// Node is this instance's name.
func (s *Store) Node() string { return s.opts.Node }

// Nodes returns the instances whose newest frame is still retained, this
// one included once it appended.
func (s *Store) Nodes() []NodeSeen {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]NodeSeen, 0, len(s.nodes))
	for _, n := range s.nodes {
		out = append(out, n)
	}
	return out
}

// forgetTrimmed drops latest frames and nodes whose newest frame retention
// dropped. Called with mu held.
func (s *Store) forgetTrimmed(oldest uint64) {
	for topic, f := range s.latest {
		if f.ID.Seq < oldest {
			delete(s.latest, topic)
		}
	}
	for name, n := range s.nodes {
		if n.Seq < oldest {
			delete(s.nodes, name)
		}
	}
}

// ownJSON says whether a stored frame's JSON carries this Store's epoch: the
// ID is its first field, `{"id":"<16 hex>-`.
func (s *Store) ownJSON(js string) bool {
	return len(js) > 24 && js[:7] == `{"id":"` && js[7:23] == s.epochHex && js[23] == '-'
}
