package hub

import (
	"encoding/binary"
	"slices"
	"sync"

	"livedash/dashboard/store"
)

// replayCacheSize is how many first chunks the hub keeps. A reconnect storm
// (a restart, a network blip) brings back clients that were live at the same
// head, so they resume from the same cursor; they reconnect spread over a few
// seconds of jittered retry: and so meet a few different heads. A handful of
// entries covers that; more would only hold memory (each entry is at most
// one replay chunk).
const replayCacheSize = 4

// replayKey names a replay exactly: every frame event in a chunk is a pure
// function of it, because an epoch's frames never change once committed.
// The epoch is the hub's own (run resets any other), so it is not part of it.
type replayKey struct {
	enc        int    // the Encoding's index
	from, head uint64 // replay (from, head]
	all        bool   // no topic filter
	topics     string // topicKey of the filter when !all
}

// topicKey is a canonical form of a topic set: the sorted names, each
// prefixed by its length, so that no two different sets give the same key
// ({"ab"} and {"a","b"} differ, as do the empty set and no filter, which
// replayKey.all tells apart).
func topicKey(topics map[string]struct{}) string {
	names := make([]string, 0, len(topics))
	n := 0
	for t := range topics {
		names = append(names, t)
		n += len(t) + 2
	}
	slices.Sort(names)
	b := make([]byte, 0, n)
	for _, t := range names {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	return string(b)
}

func newReplayKey(enc int, from, head uint64, topics map[string]struct{}) replayKey {
	if topics == nil {
		return replayKey{enc: enc, from: from, head: head, all: true}
	}
	return replayKey{enc: enc, from: from, head: head, topics: topicKey(topics)}
}

// replayChunk is the first chunk of one replay, encoded once and written by
// every subscriber that resumes with the same key. The fields are set by the one
// subscriber that reads it, before ready is closed, and never change after: the
// other subscribers read them only once ready is closed.
type replayChunk struct {
	key   replayKey
	ready chan struct{}
	ok    bool // false: the reader gave up (client gone, store error, trim); read your own

	b      []byte   // the frame events, back to back (nil when tooFar)
	n      int      // frames in b
	next   store.ID // cursor after the chunk
	more   bool     // frames after next remain up to head
	tooFar bool     // the replay exceeds the cap: send reset too_far instead
}

// replayCache holds the last few first chunks. Subscribers that resume with the
// same key share one read and one encoding: the first claims the entry and
// reads it (under a replay slot), the others wait for it to be ready. Memory
// is bounded by replayCacheSize chunks; an entry evicted while being read
// stays valid for the subscribers that hold it.
type replayCache struct {
	mu      sync.Mutex
	entries [replayCacheSize]*replayChunk
	next    int // the slot to reuse next (round robin: oldest claim first)
}

// claim returns the entry for k. build is true when the caller created it and
// must fill it and call done, or call fail; otherwise another subscriber did or
// does, and the caller waits for ready.
func (c *replayCache) claim(k replayKey) (e *replayChunk, build bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e != nil && e.key == k {
			return e, false
		}
	}
	e = &replayChunk{key: k, ready: make(chan struct{})}
	c.entries[c.next] = e
	c.next = (c.next + 1) % len(c.entries)
	return e, true
}

// done publishes a filled entry.
func (c *replayCache) done(e *replayChunk) {
	e.ok = true
	close(e.ready)
}

// fail drops an entry its reader could not fill; its waiters claim again.
func (c *replayCache) fail(e *replayChunk) {
	c.mu.Lock()
	for i, x := range c.entries {
		if x == e {
			c.entries[i] = nil
		}
	}
	c.mu.Unlock()
	close(e.ready)
}

// clear empties the cache (benchmarks measuring the read path).
func (c *replayCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries[:])
}
