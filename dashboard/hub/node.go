package hub

import (
	"sync"
	"sync/atomic"

	"livedash/dashboard/store"
)

// Encoding is one transport's encoding of a frame as an event on its wire
// (an SSE event, a WebSocket JSON object). Transports register theirs with
// Hub.NewEncoding before serving. Every node, and every replay chunk shared by
// subscribers resuming alike, encodes a frame at most once per Encoding,
// however many subscribers send it: with 10,000 subscribers the encoding is
// not on the per-subscriber path.
type Encoding struct {
	i      int
	encode EncodeFunc
}

// EncodeFunc appends the event of the frame id with its stored JSON to b.
// It must be a pure function of its arguments: its result is cached and
// shared by every subscriber using the encoding.
type EncodeFunc func(b []byte, id store.ID, json []byte) []byte

// maxEncodings bounds the encodings one hub serves; each node holds a slot
// for every one of them.
const maxEncodings = 4

// node is one Publish call: the committed frames of one commit, immutable once
// linked, except next, ready and the lazily built encodings.
type node struct {
	first, last uint64        // seq range of the frames in it (first = last+1 for the root, which holds none)
	frames      []store.Frame // JSON aliases the store's immutable bytes; Samples dropped
	enc         [maxEncodings]encoded
	next        atomic.Pointer[node]
	ready       chan struct{} // closed once next is set
}

// encoded is a node's frames in one Encoding: every event back to back in
// all, and ends[i] the end offset of frame i's event. Built once, by the
// first subscriber that needs it.
type encoded struct {
	once sync.Once
	all  []byte
	ends []int
}

// encoded returns n's frames in e, building them on first use.
func (n *node) encoded(e *Encoding) *encoded {
	x := &n.enc[e.i]
	x.once.Do(func() {
		size := 0
		for i := range n.frames {
			size += len(n.frames[i].JSON) + 64
		}
		x.all = make([]byte, 0, size)
		x.ends = make([]int, len(n.frames))
		for i := range n.frames {
			x.all = e.encode(x.all, n.frames[i].ID, n.frames[i].JSON)
			x.ends[i] = len(x.all)
		}
	})
	return x
}

// event returns frame i's event bytes (shared: never modify them).
func (x *encoded) event(i int) []byte {
	start := 0
	if i > 0 {
		start = x.ends[i-1]
	}
	return x.all[start:x.ends[i]:x.ends[i]]
}
