// Package api is livedash's JSON API for scripts and for the page's polling
// fallback and chart back-fill:
//
//	GET /api/v1/frames       frames after a cursor; short and long polling
//	GET /api/v1/latest       newest frame of every topic, encoded once per commit
//	GET /api/v1/series       catalog of topics and series
//	GET /api/v1/query        downsampled range query, column-major (uPlot)
//	GET /api/v1/openapi.json the OpenAPI 3 document of every livedash endpoint
//	GET /api/v1/dashboard    the page's panels, thresholds and host name
//
// /frames reads the ring store directly (the cursor is the ring's ID, shared
// with the SSE stream). /latest, /series and /query are answered from an
// in-memory index fed by the store's commit hook (OnCommit) and back-filled at
// start-up (Load); /query falls back to scanning the store for windows older
// than memory holds.
package api

import (
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"livedash/config"
	"livedash/dashboard/route"
	"livedash/dashboard/store"
)

// Options are the API's collaborators and memory bounds. Zero values mean the
// documented defaults.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: no metrics
	// Intervals returns each topic's collector interval for /series; nil or a
	// missing topic: the interval observed between the topic's last two frames.
	Intervals func() map[string]time.Duration
	Now       func() time.Time // default time.Now

	// IndexFrames is how many frames per topic the query index keeps in
	// memory. Default 7200 (2 h of 1 s ticks); older windows are read from
	// the store, bounded by config.API.QueryMaxFrames.
	IndexFrames int
	// MaxSeries bounds the distinct series indexed; samples of further series
	// are dropped from the index (not from the store) and counted. Default 4096.
	MaxSeries int
	// LoadMaxFrames bounds the frames Load reads back. Default: the store's
	// retention (config store.retention.frames).
	LoadMaxFrames int
	// MaxParkedPerClient caps the long polls one client (clientip.Key of
	// the request's client address) has parked at once; one more is
	// answered 429 with Retry-After instead of parking. 0 = no cap.
	MaxParkedPerClient int

	// Thresholds are checked against the newest values: /latest reports
	// the series over one. CPUs multiplies the per_cpu ones; default
	// runtime.NumCPU().
	Thresholds []config.Threshold
	CPUs       int

	// What GET /api/v1/dashboard tells the page: the panels, the host's
	// name and this instance's (Node; default Host).
	Dashboard  config.Dashboard
	Host, Node string

	// Topics and Series are known before their first frame: the enabled
	// collectors' topics and those of the panels, the series that panels
	// and thresholds name. A filter naming a topic neither known
	// nor ever seen is refused (unknown_topic), and so is a series
	// selector that matches nothing seen and names none of Series.
	Topics []string
	Series []string
}

// API serves the JSON endpoints. Its handlers are safe for concurrent use.
type API struct {
	store store.Store
	cfg   config.API
	opts  Options
	log   *slog.Logger

	// mu guards idx, loading and pending. OnCommit holds it for writing
	// briefly (append to columns); queries hold it for reading only while
	// aggregating, never while encoding or writing to a socket.
	mu      sync.RWMutex
	idx     *index
	loading bool
	pending []store.Frame

	headSeq atomic.Uint64 // idx.head.Seq, readable without mu
	epoch   atomic.Uint64

	buildMu     sync.Mutex // serialises lazy encodes, so one commit costs one encode
	latestCache atomic.Pointer[encoded]
	seriesCache atomic.Pointer[encoded]

	recentMu    sync.RWMutex // guards recent, recentBytes, wake
	recent      []store.Frame
	recentBytes int
	wake        chan struct{} // closed after each OnCommit and by Close
	closed      bool          // set by Close; guarded by recentMu
	recentGen   uint64        // bumped by each OnCommit; guarded by recentMu
	// lastPoll is the last /frames answer read from the recent window:
	// polls asking the same thing of the same window share its body.
	lastPoll atomic.Pointer[pollAnswer]

	closeOnce sync.Once

	parkMu       sync.Mutex
	parkedClient map[netip.Addr]int // parked polls per client key; guarded by parkMu

	thresholds    []*threshold // compiled Options.Thresholds; read-only
	dashboardBody *encoded     // GET /api/v1/dashboard, encoded once

	m *metrics
}

// encoded is a response body encoded once for one index head.
type encoded struct {
	head store.ID
	etag string
	body []byte
}

// maxPending bounds the commits buffered while Load runs.
const maxPending = 1 << 16

// New returns an API over store. Register OnCommit with the store before
// calling Load, and Load before serving /query.
func New(st store.Store, cfg config.API, opts Options) *API {
	def := config.Default().API
	if cfg.MaxLimit <= 0 {
		cfg.MaxLimit = def.MaxLimit
	}
	if cfg.DefaultLimit <= 0 {
		cfg.DefaultLimit = def.DefaultLimit
	}
	cfg.DefaultLimit = min(cfg.DefaultLimit, cfg.MaxLimit)
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = def.MaxWait
	}
	if cfg.QueryMaxPoints <= 0 {
		cfg.QueryMaxPoints = def.QueryMaxPoints
	}
	if cfg.QueryMaxFrames <= 0 {
		cfg.QueryMaxFrames = def.QueryMaxFrames
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.IndexFrames <= 0 {
		opts.IndexFrames = 7200
	}
	if opts.MaxSeries <= 0 {
		opts.MaxSeries = 4096
	}
	if opts.LoadMaxFrames <= 0 {
		opts.LoadMaxFrames = config.Default().Store.Retention.Frames
	}
	if opts.CPUs <= 0 {
		opts.CPUs = runtime.NumCPU()
	}
	a := &API{store: st, cfg: cfg, opts: opts, log: opts.Logger,
		idx: newIndex(opts.IndexFrames, opts.MaxSeries), wake: make(chan struct{}), parkedClient: map[netip.Addr]int{}}
	h := st.Head()
	a.epoch.Store(h.Epoch)
	a.idx.head = store.ID{Epoch: h.Epoch}
	a.m = newMetrics(opts.Registerer, a)
	var bad []config.Threshold
	a.thresholds, bad = compileThresholds(opts.Thresholds, opts.CPUs)
	for _, t := range bad {
		a.log.Warn("threshold left out: a matcher is not a valid regular expression, or it has no level", "series", t.Series)
	}
	a.dashboardBody = a.buildDashboard()
	return a
}

// Routes returns the API's endpoints for the server's route table.
func (a *API) Routes() []route.Route {
	return []route.Route{
		{Method: http.MethodGet, Path: "/api/v1/frames", Name: "frames", Handler: a.frames},
		{Method: http.MethodGet, Path: "/api/v1/latest", Name: "latest", Handler: a.latest},
		{Method: http.MethodGet, Path: "/api/v1/series", Name: "series", Handler: a.series},
		{Method: http.MethodGet, Path: "/api/v1/query", Name: "query", Handler: a.query},
		{Method: http.MethodGet, Path: "/api/v1/openapi.json", Name: "openapi", Handler: a.openapi},
		{Method: http.MethodGet, Path: "/api/v1/dashboard", Name: "dashboard", Handler: a.dashboard},
	}
}

// Close releases parked long polls at once (each answers with no frames and
// its cursor), and every later long poll answers without waiting. Call it
// when the server starts shutting down, so that http.Server.Shutdown does
// not wait for max_wait. Safe to call twice.
func (a *API) Close() {
	a.closeOnce.Do(func() {
		a.recentMu.Lock()
		a.closed = true
		close(a.wake) // never replaced: later polls see it closed and answer at once
		a.recentMu.Unlock()
	})
}

// OnCommit feeds committed frames into the recent window (waking long polls)
// and the index. The store calls it under its append lock, in commit order;
// long polls are woken by it, so it must be registered with the store.
// It appends to in-memory columns and never
// blocks on I/O (it may wait for a query's read lock, which is held only while
// aggregating at most QueryMaxFrames frames).
func (a *API) OnCommit(frames []store.Frame) {
	a.addRecent(frames)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.loading {
		if len(a.pending)+len(frames) <= maxPending {
			a.pending = append(a.pending, frames...)
		}
		return
	}
	for i := range frames {
		f := &frames[i]
		a.idx.apply(f.ID, f.TS, f.Topic, f.Samples)
	}
	a.headSeq.Store(a.idx.head.Seq)
}

// headID is the newest frame the index holds.
func (a *API) headID() store.ID {
	return store.ID{Epoch: a.epoch.Load(), Seq: a.headSeq.Load()}
}

type metrics struct {
	parked     prometheus.Gauge
	capped     prometheus.Counter
	storeScans prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, a *API) *metrics {
	m := &metrics{
		parked: prometheus.NewGauge(prometheus.GaugeOpts{Name: "livedash_api_long_polls",
			Help: "Long polls of /api/v1/frames currently waiting for a frame."}),
		capped: prometheus.NewCounter(prometheus.CounterOpts{Name: "livedash_api_queries_capped_total",
			Help: "Range queries whose points or scanned frames were capped."}),
		storeScans: prometheus.NewCounter(prometheus.CounterOpts{Name: "livedash_api_query_store_scans_total",
			Help: "Range queries answered by scanning the store because memory did not cover the window."}),
	}
	series := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "livedash_api_index_series",
		Help: "Distinct series held by the in-memory query index."}, func() float64 {
		a.mu.RLock()
		defer a.mu.RUnlock()
		return float64(a.idx.nseries)
	})
	dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "livedash_api_index_dropped_samples_total",
		Help: "Samples not indexed because the index holds its maximum number of series."}, func() float64 {
		a.mu.RLock()
		defer a.mu.RUnlock()
		return float64(a.idx.dropped)
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{m.parked, m.capped, m.storeScans, series, dropped} {
			if err := reg.Register(c); err != nil {
				a.log.Warn("api metric not registered", "err", err)
			}
		}
	}
	return m
}

// floorDiv is division rounding toward −∞.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }
