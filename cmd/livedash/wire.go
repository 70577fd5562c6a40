package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"livedash/config"
	"livedash/dashboard"
	"livedash/dashboard/ring"
)

// parts is everything runServe starts besides the store and the server.
type parts struct {
	deps dashboard.Deps
	run  func(ctx context.Context) error // the collectors; nil when none
}

// wire connects the parts: the store's commit hook feeds the hub and the API
// indexes; collectors and push append to the store.
func wire(cfg config.Config, flags serveFlags, store *ring.Store, reg *prometheus.Registry, log *slog.Logger) (parts, error) {
	p := parts{deps: dashboard.Deps{
		Store:    store,
		Registry: reg,
		Logger:   log.With("component", "http"),
		Version:  version(),
	}}
	return p, nil
}
