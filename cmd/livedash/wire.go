package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"livedash/assets"
	"livedash/collectors"
	"livedash/config"
	"livedash/dashboard"
	"livedash/dashboard/api"
	"livedash/dashboard/hub"
	"livedash/dashboard/push"
	"livedash/dashboard/sse"
	"livedash/dashboard/store"
	"livedash/dashboard/ws"
)

// parts is everything runServe starts besides the store and the server.
type parts struct {
	deps dashboard.Deps
	run  func(ctx context.Context) error // the collectors; nil when none
	// background work that ends by itself (or with ctx), waited for at exit
	background []func(ctx context.Context) error
}

// wire connects the parts: the store's commit hook feeds the hub and the API
// indexes; collectors and push append to the store.
func wire(cfg config.Config, flags serveFlags, store store.Store, reg *prometheus.Registry, log *slog.Logger) (parts, error) {
	b := buildInfo()
	p := parts{deps: dashboard.Deps{
		Store:     store,
		Registry:  reg,
		Logger:    log.With("component", "http"),
		Version:   b.Version,
		Commit:    b.Commit,
		BuildDate: b.Date,
		Host:      hostName(),
	}}

	// The hub first: its commit hook must see every frame the collectors
	// append, and the API's hook is registered after it.
	h := hub.New(store, cfg.Stream, hub.Options{Logger: log.With("component", "stream"), Registerer: reg})
	store.OnCommit(h.Publish)
	// The API, made below, knows which topics exist; streams and sockets ask
	// it.
	var knownTopic func(string) bool
	known := func(t string) bool { return knownTopic(t) }
	p.deps.Stream = sse.New(h, sse.Options{Logger: log.With("component", "stream"), Known: known})
	// WebSocket: the same hub, for clients behind proxies that buffer SSE.
	// Browsers of the CORS origins may open sockets too; no other site can.
	p.deps.WebSocket = ws.New(h, ws.Options{
		Logger:         log.With("component", "ws"),
		Registerer:     reg,
		AllowedOrigins: cfg.HTTP.CORSOrigins,
		Compression:    cfg.Stream.WSCompression,
		Known:          known,
	}).Serve

	page := assets.FS()
	if flags.dev {
		page, p.deps.DevAssets = assets.Dir(flags.devDir), true
	}
	p.deps.Licenses = assets.Licenses(page)
	var err error
	if p.deps.Assets, err = assets.Page(page); err != nil {
		p.deps.PageProblem = "this binary was built without the page's chart library (uPlot): " +
			"build it with `go generate ./assets && go build ./cmd/livedash` or `make build`"
		log.Warn("the dashboard page is not in this binary: / serves a page that says how to build it; the API works", "err", err)
	}

	set, err := collectors.New(cfg.Collectors, collectors.Options{
		Logger:     log.With("component", "collectors"),
		Registerer: reg,
		Demo:       flags.demo,
	})
	if err != nil {
		return p, fmt.Errorf("collectors: %w", err)
	}
	sink := storeSink{store: store}
	if cfg.SharedStore() {
		sink.node = cfg.NodeName()
	}
	p.run = func(ctx context.Context) error { return set.Run(ctx, sink) }
	p.deps.Collectors = func() []dashboard.CollectorStatus {
		st := set.Status()
		out := make([]dashboard.CollectorStatus, 0, len(st))
		for _, j := range st {
			out = append(out, dashboard.CollectorStatus{Name: j.Collector, Interval: j.Interval.String(),
				LastError: errorClass(j.LastError), LastOK: j.LastOK})
		}
		return out
	}
	p.deps.Push = push.HandlerWith(pushAppender{store}, cfg.Push, push.Options{Registerer: reg, Logger: log.With("component", "push")})

	intervals := map[string]time.Duration{}
	var topics []string // known before their first frame
	for _, in := range set.Infos() {
		if cur, ok := intervals[in.Topic]; !ok || in.Interval < cur {
			intervals[in.Topic] = in.Interval
		}
		if !slices.Contains(topics, in.Topic) {
			topics = append(topics, in.Topic)
		}
	}
	// The page asks for its panels' topics, the built-in panels' too (a
	// host collector may be off, or not exist on this system): they are
	// known, and answered empty until data comes.
	var series []string // named by panels and thresholds
	panels, _ := cfg.Dashboard.EffectivePanels()
	for _, pn := range panels {
		if !slices.Contains(topics, pn.Topic) {
			topics = append(topics, pn.Topic)
		}
		series = append(series, pn.Series...)
	}
	for _, t := range cfg.Thresholds {
		series = append(series, t.Series, t.Of)
	}
	a := api.New(store, cfg.API, api.Options{
		Logger:     log.With("component", "api"),
		Registerer: reg,
		Intervals:  func() map[string]time.Duration { return intervals },

		MaxParkedPerClient: cfg.HTTP.MaxPollsPerClient,

		Thresholds: cfg.Thresholds,
		Dashboard:  cfg.Dashboard,
		Host:       p.deps.Host,
		Node:       cfg.NodeName(),
		Topics:     topics,
		Series:     series,
	})
	knownTopic = a.KnownTopic
	store.OnCommit(a.OnCommit)
	p.deps.API = a.Routes()
	p.deps.OnShutdown = append(p.deps.OnShutdown, a.Close)
	// The query index is rebuilt from the store beside the collectors; the
	// API buffers commits that arrive meanwhile.
	p.background = append(p.background, func(context.Context) error { return a.Load() })
	return p, nil
}

// hostName is the machine's name as the dashboard shows it, "localhost"
// when the system has none.
func hostName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

// pushAppender stores one pushed frame.
type pushAppender struct{ store store.Store }

func (a pushAppender) AppendPush(topic string, t time.Time, samples []push.Sample) (string, error) {
	rs := make([]store.Sample, len(samples))
	for i, s := range samples {
		rs[i] = store.Sample(s)
	}
	fs, err := a.store.Append([]store.Batch{{Topic: topic, Time: t, Samples: rs}})
	if err != nil {
		return "", err
	}
	return fs[0].ID.String(), nil
}

// storeSink appends collector batches to the store, one call one commit.
// With a store shared by several instances, node is set and every sample
// gets the label node=<node>, so each instance's host metrics stay apart; a
// sample that already has a node label (a scraped target's own) keeps it as
// exported_node, as Prometheus does with clashing target labels.
type storeSink struct {
	store store.Store
	node  string
}

func (s storeSink) Append(batches []collectors.Batch) error {
	rb := make([]store.Batch, len(batches))
	for i, b := range batches {
		samples := make([]store.Sample, len(b.Samples))
		for j, smp := range b.Samples {
			samples[j] = store.Sample(smp)
			if s.node != "" {
				samples[j].Labels = withNode(smp.Labels, s.node)
			}
		}
		rb[i] = store.Batch{Topic: b.Topic, Time: b.Time, Samples: samples}
	}
	_, err := s.store.Append(rb)
	return err
}

// withNode returns a copy of labels with node set; the collector's map is
// left alone.
func withNode(labels map[string]string, node string) map[string]string {
	out := make(map[string]string, len(labels)+1)
	for k, v := range labels {
		out[k] = v
	}
	if v, ok := labels["node"]; ok {
		out["exported_node"] = v
	}
	out["node"] = node
	return out
}

// errorClass reduces a collector's error text to a class for the
// unauthenticated status endpoint; the text itself is in the log.
func errorClass(text string) string {
	switch {
	case text == "":
		return ""
	case strings.HasPrefix(text, "panic"):
		return "panic"
	case strings.Contains(text, "timeout") || strings.Contains(text, "timed out") || strings.Contains(text, "deadline exceeded"):
		return "timeout"
	}
	return "error"
}
