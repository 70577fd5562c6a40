package bolt

import (
	"path/filepath"
	"testing"

	"livedash/dashboard/store"
	"livedash/dashboard/store/storetest"
)

// TestContract runs the suite every store.Store must pass on bbolt stores,
// each a new file checked with bbolt's consistency check once closed.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg storetest.Config) store.Store {
		path := filepath.Join(t.TempDir(), "ring.db")
		s, err := Open(Options{Path: path, MaxFrames: cfg.MaxFrames, MaxAge: cfg.MaxAge, Now: cfg.Now, NoSync: true})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			for _, err := range CheckFile(path) {
				t.Errorf("check %s: %v", path, err)
			}
		})
		return s
	})
}
