package redis

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"livedash/dashboard/store"
	"livedash/dashboard/store/redis/redistest"
	"livedash/dashboard/store/storetest"
)

// TestContract runs the suite every store.Store must pass against a real
// redis-server: one server for the run, each store under its own key prefix
// (a fresh, empty ring with its own epoch).
func TestContract(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T, cfg storetest.Config) store.Store {
		s, err := Open(context.Background(), Options{
			URL:       srv.URL(),
			KeyPrefix: fmt.Sprintf("contract%d", n.Add(1)),
			Node:      "test",
			MaxFrames: cfg.MaxFrames,
			MaxAge:    cfg.MaxAge,
			Now:       cfg.Now,
			Require:   true,
		})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		return s
	})
}
