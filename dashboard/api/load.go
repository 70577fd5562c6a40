package api

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"livedash/dashboard/store"
)

// loadChunk is how many frames one read transaction copies out during Load
// and store-backed queries: short transactions never hold up a writer that
// needs to grow the file.
const loadChunk = 512

type storedFrame struct {
	seq   uint64
	ts    int64
	topic string
	json  []byte
}

// wireFrame is the part of a frame's JSON the index needs.
type wireFrame struct {
	Samples []store.Sample `json:"samples"`
}

// readChunk copies up to n frames after seq out of the store.
func readChunk(s store.Store, after uint64, n int, buf []storedFrame) ([]storedFrame, error) {
	buf = buf[:0]
	_, err := s.ScanView(after, n, func(seq uint64, ts int64, topic, js []byte) bool {
		buf = append(buf, storedFrame{seq, ts, string(topic), bytes.Clone(js)})
		return true
	})
	return buf, err
}

// Load back-fills the index from the store: the newest frames up to
// Options.LoadMaxFrames, and the newest frame of every topic the store knows.
// Commits that arrive meanwhile are held and applied after, so there is no gap
// and no duplicate at the seam (OnCommit must be registered before Load).
// Load decodes frames outside the store's transactions and outside the
// index lock; queries during Load see a partial index.
func (a *API) Load() error {
	start := time.Now()
	a.mu.Lock()
	a.loading = true
	epoch := a.epoch.Load()
	a.idx = newIndex(a.opts.IndexFrames, a.opts.MaxSeries)
	a.idx.head = store.ID{Epoch: epoch}
	a.pending = nil
	a.mu.Unlock()
	// Whatever happens, stop buffering and apply what was held.
	defer func() {
		a.mu.Lock()
		for i := range a.pending {
			f := &a.pending[i]
			a.idx.apply(f.ID, f.TS, f.Topic, f.Samples)
		}
		a.pending, a.loading = nil, false
		a.headSeq.Store(a.idx.head.Seq)
		a.mu.Unlock()
		a.latestCache.Store(nil)
		a.seriesCache.Store(nil)
	}()

	head := a.store.Head()
	oldest := a.store.Oldest()
	from := head.Seq // cursor: read frames after it
	if a.store.Len() > 0 {
		from = oldest.Seq - 1
	}
	complete := true
	if head.Seq-from > uint64(a.opts.LoadMaxFrames) {
		from, complete = head.Seq-uint64(a.opts.LoadMaxFrames), false
	}
	// Topics whose newest frame is older than the back-fill still belong in
	// /latest: their newest frames go in first, in seq order (all precede
	// the back-fill), so the index sees every frame in order.
	var older []store.Frame
	for _, t := range a.store.Topics() {
		if f, ok := a.store.Latest(t); ok && f.ID.Epoch == epoch && f.ID.Seq <= from {
			older = append(older, f)
		}
	}
	slices.SortFunc(older, func(x, y store.Frame) int { return cmp.Compare(x.ID.Seq, y.ID.Seq) })
	for _, f := range older {
		var w wireFrame
		if err := json.Unmarshal(f.JSON, &w); err != nil {
			a.log.Warn("stored frame is not valid JSON; not indexed", "seq", f.ID.Seq)
			continue
		}
		a.mu.Lock()
		a.idx.apply(f.ID, f.TS, f.Topic, w.Samples)
		a.mu.Unlock()
	}

	var buf []storedFrame
	var n int
	first := true
	for from < head.Seq {
		var err error
		buf, err = readChunk(a.store, from, int(min(uint64(loadChunk), head.Seq-from)), buf)
		if err != nil {
			return fmt.Errorf("load api index: %w", err)
		}
		if len(buf) == 0 {
			break
		}
		if first && (!complete || buf[0].seq != from+1) {
			// Memory starts at the first frame read: older ones were left to
			// the store (LoadMaxFrames) or trimmed meanwhile.
			a.mu.Lock()
			a.idx.loadedFromMs = buf[0].ts
			a.mu.Unlock()
		}
		first = false
		decoded := make([][]store.Sample, len(buf))
		for i := range buf {
			var w wireFrame
			if err := json.Unmarshal(buf[i].json, &w); err != nil {
				a.log.Warn("stored frame is not valid JSON; not indexed", "seq", buf[i].seq)
				continue
			}
			decoded[i] = w.Samples
		}
		a.mu.Lock()
		for i := range buf {
			f := &buf[i]
			a.idx.apply(store.ID{Epoch: epoch, Seq: f.seq}, f.ts, f.topic, decoded[i])
		}
		a.headSeq.Store(a.idx.head.Seq)
		a.mu.Unlock()
		n += len(buf)
		from = buf[len(buf)-1].seq
	}
	a.log.Info("api index loaded", "frames", n, "complete", complete, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
