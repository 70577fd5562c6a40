// Package store holds what every livedash store shares: the frame and its
// ID, the batch a collector appends, the reasons a cursor cannot be resumed,
// the result of a read, and the Store interface with its contract. The hub,
// the JSON API, push ingest and the wiring use only this package; the bbolt
// ring (store/bolt) and any other implementation satisfy Store, and the
// suite in store/storetest checks that they keep its contract.
package store

import (
	"errors"
	"time"
)

// Store is livedash's source of truth: a bounded, durable ring of frames.
// All methods are safe for concurrent use.
//
// The contract every implementation keeps:
//
//   - IDs: every frame of one store carries the store's epoch. A new, wiped
//     or quarantined store gets a new random epoch. Within an epoch seqs are
//     consecutive and strictly increasing across all topics: one Append of
//     n batches gets seqs head+1 … head+n, in batch order. Seq 0 is "before
//     the first frame" and is a valid cursor.
//   - Durability first: a frame is visible to readers, to Latest and to the
//     commit hooks only after it is durable. Append returns after that, and
//     calls the OnCommit hooks (in registration order, in commit order)
//     before Changed's channel is closed. A failed Append stores nothing of
//     its batches and leaves Head and Oldest unchanged.
//   - Shared stores: a store several processes append to (store/redis)
//     hands its hooks every process's commits, in the one order of the
//     shared ring, from a goroutine of its own once started (after the
//     hooks are registered, so none misses a commit), and its Head, reads and
//     Latest follow what it has handed them; its Append returns once its
//     own frames went through the hooks. If the shared ring loses its
//     epoch, the store reports it through Err and serves nothing more: a
//     new value gets the new epoch.
//   - Retention: the ring keeps at most its configured number of frames and
//     drops frames older than its maximum age by the store's clock, oldest
//     first, trimmed in the same step as the append; it drops nothing else.
//     An implementation may bound how many frames one append drops for age,
//     so that a clock jumping forward drains the ring over several appends
//     instead of in one long step. Oldest only grows. A ring emptied by
//     retention keeps its head: the next frame still gets head+1.
//   - Reads after a cursor (After, AfterView) return matching frames with a
//     seq above the cursor, in seq order, by seek (never a scan from the
//     start). At the edges: a cursor of another epoch is UnknownEpoch; above
//     the head is Future; below oldest-1 is Expired (some frame after it is
//     gone); a cursor equal to the head, or to oldest-1, is fine. A Reset
//     result holds no frames, and its Head and Oldest say where the cursor
//     can resume instead. The cursor is checked in the same read as the
//     frames, so a trim between two calls is reported, never skipped.
//     Result.Next is where to continue: every frame up to it was looked at.
//   - Nothing read keeps the store busy: views passed to callbacks are valid
//     only during the call, and no read is held open after a method returns.
type Store interface {
	// Epoch is the store's epoch, fixed for the life of the value.
	Epoch() uint64
	// Head is the ID of the newest committed frame (Seq 0 if none ever
	// was). It moves one commit at a time, just before the commit hooks are
	// called with that commit.
	Head() ID
	// Oldest is the ID of the oldest retained frame, or Head when the store
	// holds none: an ID that exists (the head is always a valid cursor),
	// never one past the head, which as a cursor would be Future. Len tells
	// an empty store from one that holds just its head.
	Oldest() ID
	// Len is the number of retained frames; Size the store's size in bytes.
	Len() int
	Size() int64
	// Err is the error of the last Append that reached storage, nil when it
	// succeeded (readiness), ErrClosed once closed. An Append rejected with
	// ErrTopic does not change it: a bad topic says nothing about the store.
	Err() error

	// Append commits batches as consecutive frames, one frame per batch,
	// and returns them with their IDs and wire JSON. A topic that is empty
	// or longer than MaxTopicLen fails the whole call with ErrTopic before
	// anything is written; after Close it fails with ErrClosed.
	Append(batches []Batch) ([]Frame, error)
	// OnCommit registers fn, called after every successful commit with the
	// committed frames, in commit order with consecutive seqs. fn must not
	// block and must not call Append. Register hooks before the first
	// Append.
	OnCommit(fn func([]Frame))
	// Changed returns a channel closed after the next commit, once the
	// commit hooks have run.
	Changed() <-chan struct{}

	// After returns the frames after cursor whose topic matches (nil: all),
	// within lim, copied out of the store.
	After(cursor ID, match func(topic string) bool, lim Limits) Result
	// AfterView is After without the copy: fn sees each matching frame's
	// seq, ts, topic and JSON, valid only during the call; fn must not
	// block. The Result is After's with Frames nil. On a Reset fn is never
	// called; on Err the frames fn saw must be discarded.
	AfterView(cursor ID, match func(topic []byte) bool, lim Limits, fn func(seq uint64, ts int64, topic, json []byte)) Result
	// ScanView calls fn for every frame with seq > after, oldest first,
	// until fn returns false or max (> 0) frames were visited, and returns
	// the last seq visited. Views are valid only during fn; fn must not
	// block. Meant for building in-memory indexes.
	ScanView(after uint64, max int, fn func(seq uint64, ts int64, topic, json []byte) bool) (last uint64, err error)
	// SeekTime returns the seq of the first retained frame whose ts ≥ ms
	// (Head+1 when every frame is older). ts follows seq except around
	// wall-clock jumps, where the answer is approximate.
	SeekTime(ms int64) uint64
	// Latest returns the newest retained frame of topic, as read back (no
	// Samples); Topics the topics that have one. A topic whose frames
	// retention dropped has none.
	Latest(topic string) (Frame, bool)
	Topics() []string

	// Close releases the store. Further Appends fail with ErrClosed; a
	// second Close returns nil.
	Close() error
}

// Errors every implementation returns for the same conditions.
var (
	ErrClosed = errors.New("store: closed")
	ErrTopic  = errors.New("store: invalid topic")
)

// MaxTopicLen is the longest topic a store accepts.
const MaxTopicLen = 255

// Frame is one committed frame. JSON is the exact wire encoding (see
// AppendFrameJSON); Samples is set only on frames handed to commit hooks
// (nil on frames read back).
type Frame struct {
	ID      ID
	Topic   string
	TS      int64 // Unix ms
	JSON    []byte
	Samples []Sample
}

// Batch is what a collector produced in one tick: one Batch becomes one
// Frame. A zero Time means "now" by the store's clock.
type Batch struct {
	Topic   string
	Time    time.Time
	Samples []Sample
}

// Reason says why a cursor cannot be resumed. The strings are the wire
// values of the stream's `reset` event and the poll API's reset object.
type Reason string

// Reasons. OK means the cursor can be resumed.
const (
	OK           Reason = ""
	Malformed    Reason = "malformed"
	UnknownEpoch Reason = "unknown_epoch"
	Expired      Reason = "expired"
	Future       Reason = "future"
	TooFar       Reason = "too_far" // decided by transports with a replay cap
)

// CheckBounds says whether reading after seq `after` returns every retained
// frame after it, given the oldest retained seq and the head.
func CheckBounds(after, oldest, head uint64) Reason {
	switch {
	case after > head:
		return Future
	case after+1 < oldest:
		return Expired
	}
	return OK
}

// Result is what a read after a cursor returns.
type Result struct {
	Frames []Frame // matching frames with seq > the cursor, in order; JSON copied
	// Next is the cursor to continue from: every frame up to Next was looked
	// at, so resuming after Next misses nothing and repeats nothing.
	Next   ID
	Head   ID     // head as of the read
	Oldest ID     // oldest retained as of the read (Head when none is)
	More   bool   // a limit stopped the read before the head
	Reset  Reason // non-empty: the cursor cannot be resumed, Frames is empty
	Err    error  // storage error; Frames is empty
}

// Limits bound one read. Zero fields mean no bound of that kind, except
// Scan, which implementations default to 100,000 so that a rare topic filter
// costs at most that many frame visits per call.
type Limits struct {
	Frames int // matching frames returned
	Bytes  int // JSON bytes returned (at least one frame is returned)
	Scan   int // frames visited, matching or not
	// Until: read no frame with a seq above it, as if it were the head
	// (a hub replaying up to the head it registered at). Zero: no bound.
	// Cursor checks (future, expired) still use the store's real head.
	Until uint64
}
