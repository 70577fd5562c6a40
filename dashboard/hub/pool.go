package hub

import "sync"

// bufPool holds write buffers for replay chunks and coalesced writes, so an
// idle subscriber holds no buffer at all (memory per idle subscriber matters
// at 10k of them). Very large buffers are dropped rather than pooled.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// GetBuf takes a write buffer (length 0) from the pool shared by the hub and
// its transports; PutBuf gives it back.
func GetBuf() *[]byte { return bufPool.Get().(*[]byte) }

// PutBuf returns b to the pool, unless it grew very large.
func PutBuf(b *[]byte) {
	if cap(*b) > 1<<20 {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}
