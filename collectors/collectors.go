// Package collectors produces livedash's data: one goroutine per enabled
// collector job samples on its own interval and hands a Batch (one frame) to a
// Sink. Counters are turned into per-second rates here, so every value that
// leaves the package can be drawn directly; NaN and ±Inf never leave it.
//
// The package imports nothing of livedash's dashboard; cmd/livedash adapts a
// Sink to the store.
package collectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"livedash/config"
)

// Sample is one value of one series. Labels maps may be shared between
// samples and between batches: receivers must treat them as read-only.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Batch is everything one collector job produced in one tick: one frame.
// Time is the tick's wall-clock time, aligned to the interval, so batches of
// collectors that tick together carry the same Time.
type Batch struct {
	Topic   string
	Time    time.Time
	Samples []Sample
}

// Sink receives batches. One call is one store transaction. Append is called
// from a single goroutine, never concurrently; it must return (the scheduler
// drops new batches while it does not).
type Sink interface {
	Append(batches []Batch) error
}

// Info describes one scheduled job for the series catalog.
type Info struct {
	Topic     string        // the collector name
	Target    string        // the target or command name for per-target jobs, else ""
	Interval  time.Duration // how often it ticks
	Timeout   time.Duration // per-collect timeout
	Collector string        // the value of the collector label in health metrics
}

// Options are the run-time inputs that are not configuration.
type Options struct {
	Logger     *slog.Logger          // default: slog.Default()
	Registerer prometheus.Registerer // health metrics; nil = not exported
	Demo       bool                  // enables the synthetic collector unless configured otherwise

	// ProcRoot is where /proc is mounted; tests point it at fixtures.
	ProcRoot string
	// QueueBatches bounds the batches waiting for the sink; when it is full
	// new batches are dropped and counted. Default 1024 (minutes of a default
	// set at 1 s, seconds of a 10 ms synthetic collector).
	QueueBatches int
	// GatherWindow is how long the committer waits after the first batch of a
	// tick for the batches of other collectors that ticked at the same
	// instant, so they are appended in one call. Default 5ms.
	GatherWindow time.Duration
}

// collector is one job's sampling logic. collect is called from one goroutine
// at a time; it must return soon after ctx is done. now carries the monotonic
// clock and is the time rates are computed with.
type collector interface {
	collect(ctx context.Context, now time.Time) ([]Sample, error)
}

// job is one scheduled unit: a host collector, or one target of a
// configurable collector that has per-target intervals.
type job struct {
	info Info
	c    collector

	mu      sync.Mutex // guards lastErr, lastOK: written by the job, read by Status
	lastErr string
	lastOK  time.Time
}

// JobStatus is one job's health for /api/v1/status.
type JobStatus struct {
	Info
	LastError string    // the last collect's error; "" after a good collect
	LastOK    time.Time // when the last good collect finished; zero if none yet
}

// Status returns every job's last outcome. Safe to call while Run runs.
func (s *Set) Status() []JobStatus {
	out := make([]JobStatus, len(s.jobs))
	for i, j := range s.jobs {
		j.mu.Lock()
		out[i] = JobStatus{Info: j.info, LastError: j.lastErr, LastOK: j.lastOK}
		j.mu.Unlock()
	}
	return out
}

func (j *job) record(err error, panicked any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case panicked != nil:
		j.lastErr = fmt.Sprintf("panic: %v", panicked)
	case err != nil:
		j.lastErr = err.Error()
	default:
		j.lastErr, j.lastOK = "", time.Now()
	}
}

// Set is a configured set of collector jobs. Build it with New, start it with
// Run (once).
type Set struct {
	jobs   []*job
	log    *slog.Logger
	m      *metrics
	queue  int
	gather time.Duration
}

// env is what constructors get besides their config section.
type env struct {
	opts Options
	log  *slog.Logger
	m    *metrics
}

// entry is one row of the explicit collector table.
type entry struct {
	name string
	// on reports whether the collector runs when its config leaves
	// enabled unset.
	on func(o Options) bool
	// base returns the common keys of the collector's config section.
	base func(c *config.Collectors) config.Common
	// build returns the collector's jobs; intervals and timeouts are filled
	// in from base for jobs that leave them zero.
	build func(c *config.Collectors, e env) ([]*job, error)
}

func onLinux(Options) bool { return runtime.GOOS == "linux" }
func always(Options) bool  { return true }
func demo(o Options) bool  { return o.Demo }

// table lists every collector, in the order their jobs are started.
var table = []entry{
	{"cpu", onLinux, func(c *config.Collectors) config.Common { return c.CPU.Common }, newCPU},
	{"memory", onLinux, func(c *config.Collectors) config.Common { return c.Memory }, newMemory},
	{"load", onLinux, func(c *config.Collectors) config.Common { return c.Load }, newLoad},
	{"disk", onLinux, func(c *config.Collectors) config.Common { return c.Disk.Common }, newDisk},
	{"filesystem", onLinux, func(c *config.Collectors) config.Common { return c.Filesystem.Common }, newFilesystem},
	{"network", onLinux, func(c *config.Collectors) config.Common { return c.Network.Common }, newNetwork},
	{"system", onLinux, func(c *config.Collectors) config.Common { return c.System }, newSystem},
	{"self", always, func(c *config.Collectors) config.Common { return c.Self }, newSelf},
	{"http", always, func(c *config.Collectors) config.Common { return c.HTTP.Common }, newHTTPProbe},
	{"prometheus", always, func(c *config.Collectors) config.Common { return c.Prometheus.Common }, newScrape},
	{"exec", always, func(c *config.Collectors) config.Common { return c.Exec.Common }, newExec},
	{"synthetic", demo, func(c *config.Collectors) config.Common { return c.Synthetic.Common }, newSynthetic},
}

// Names returns the names of all built-in collectors, which are also their
// topics.
func Names() []string {
	out := make([]string, len(table))
	for i, e := range table {
		out[i] = e.name
	}
	return out
}

// New builds the enabled collectors of cfg. cfg is expected to have passed
// config's Validate (Load does not call it); New still returns an error for
// what it cannot build, naming the collector, and a value left zero takes
// config.Default()'s value for its section.
func New(cfg config.Collectors, opts Options) (*Set, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.QueueBatches <= 0 {
		opts.QueueBatches = 1024
	}
	if opts.GatherWindow <= 0 {
		opts.GatherWindow = 5 * time.Millisecond
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Set{log: opts.Logger, m: m, queue: opts.QueueBatches, gather: opts.GatherWindow}
	def := config.Default().Collectors
	var errs []error
	for _, row := range table {
		base := row.base(&cfg)
		on := row.on(opts)
		if base.Enabled != nil {
			on = *base.Enabled
		}
		if !on {
			continue
		}
		jobs, err := row.build(&cfg, env{opts: opts, log: opts.Logger.With("collector", row.name), m: m})
		if err != nil {
			errs = append(errs, fmt.Errorf("collector %s: %w", row.name, err))
			continue
		}
		for _, j := range jobs {
			j.info.Topic = row.name
			if j.info.Collector == "" {
				j.info.Collector = row.name
			}
			if j.info.Interval <= 0 {
				j.info.Interval = base.Interval.D()
			}
			if j.info.Interval <= 0 {
				j.info.Interval = row.base(&def).Interval.D()
			}
			if j.info.Timeout <= 0 {
				j.info.Timeout = base.Timeout.D()
			}
			if j.info.Timeout <= 0 || j.info.Timeout > j.info.Interval {
				j.info.Timeout = j.info.Interval
			}
			s.jobs = append(s.jobs, j)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// Infos describes every scheduled job, in start order.
func (s *Set) Infos() []Info {
	out := make([]Info, len(s.jobs))
	for i, j := range s.jobs {
		out[i] = j.info
	}
	return out
}
