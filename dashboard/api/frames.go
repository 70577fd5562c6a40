package api

import (
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"livedash/dashboard/apierr"
	"livedash/dashboard/ring"
)

const (
	// maxResponseBytes bounds the frame bytes of one /frames response (at
	// least one frame is always returned); the rest comes with `next`.
	maxResponseBytes = 4 << 20
	// maxScan bounds the frames one read visits when a topic filter skips
	// most of them; the cursor still advances past what was visited.
	maxScan = 100_000
	// maxJitter caps the random extra added to a long poll's wait, which
	// spreads the re-polls of many clients that timed out together.
	maxJitter = time.Second
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 1<<20 {
		return // do not pin huge buffers
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// frames serves GET /api/v1/frames.
//
// Cursor semantics (the same IDs as the SSE stream, DESIGN §3):
//   - after omitted: start at the head; only frames committed later are returned.
//   - after=oldest: start before the oldest retained frame.
//   - after=<id>: frames after it. A malformed ID is a 400 naming `after`.
//     An ID that cannot be resumed is answered 200 with a `reset` object and
//     a stated position, never with a silent partial replay:
//     unknown_epoch and future → `next` is the head (nothing replayed);
//     expired → the response carries the frames from the oldest retained one
//     and `next` continues after them.
//
// Long polling (wait > 0, clamped to max_wait — 60 s by default): if nothing
// matches, the request parks on the store's commit signal (one goroutine, one
// channel receive, no polling) and re-reads after each commit; it answers as
// soon as a frame matches (woken by OnCommit; near the head the frames come
// from the recent window in memory), or at wait plus a random jitter of up to 10 %
// (at most 1 s) with empty frames. `next` never moves backwards; with no match
// it may move past frames of other topics. A response with a reset is never
// held.
func (a *API) frames(c echo.Context) error {
	p, aerr := ParseFramesParams(c.QueryString(), a.cfg)
	if aerr != nil {
		return aerr
	}
	var match func(string) bool
	switch len(p.Topics) {
	case 0:
	case 1:
		t := p.Topics[0]
		match = func(s string) bool { return s == t }
	default:
		set := make(map[string]struct{}, len(p.Topics))
		for _, t := range p.Topics {
			set[t] = struct{}{}
		}
		match = func(s string) bool { _, ok := set[s]; return ok }
	}
	lim := ring.Limits{Frames: p.Limit, Bytes: maxResponseBytes, Scan: maxScan}

	var cursor ring.ID
	switch p.Mode {
	case AfterHead:
		cursor = a.store.Head()
	case AfterOldest:
		cursor = a.store.Oldest()
		if a.store.Len() > 0 {
			cursor.Seq--
		}
	case AfterID:
		cursor = p.After
	}

	var timer *time.Timer
	ctx := c.Request().Context()
	for {
		changed, closed, gen := a.changed() // before reading, so no commit slips between
		oldest := a.store.Oldest()
		if pa := a.lastPoll.Load(); pa != nil && pa.gen == gen && pa.cursor == cursor &&
			pa.oldest == oldest && pa.query == c.QueryString() {
			return writeJSON(c, pa.body, noStore)
		}
		r, ok := a.readRecent(cursor, match, lim)
		if !ok {
			r = a.store.After(cursor, match, lim)
		}
		if r.Err != nil {
			return &apierr.Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable",
				Message: "the store could not be read; try again", Err: r.Err}
		}
		var reset *resetInfo
		if r.Reset != ring.OK {
			if p.Mode == AfterOldest && r.Reset == ring.Expired {
				// Trimmed between Oldest and After: start again from the new oldest.
				cursor = ring.ID{Epoch: r.Oldest.Epoch, Seq: r.Oldest.Seq - 1}
				continue
			}
			reset = &resetInfo{reason: r.Reset, requested: cursor, oldest: r.Oldest, head: r.Head}
			r = a.resume(r, match, lim)
			if r.Err != nil {
				return &apierr.Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable",
					Message: "the store could not be read; try again", Err: r.Err}
			}
		}
		if ok && len(r.Frames) > 0 && reset == nil {
			// The answer depends only on the window (gen), the cursor, the
			// store's oldest and the query (topics, limit): the thousands of
			// polls one commit releases mostly ask the same, so it is built
			// once and shared.
			pa := &pollAnswer{gen: gen, cursor: cursor, oldest: oldest, query: c.QueryString(),
				body: a.appendFrames(nil, r, nil)}
			a.lastPoll.Store(pa)
			return writeJSON(c, pa.body, noStore)
		}
		if len(r.Frames) > 0 || reset != nil || p.Wait <= 0 || closed {
			return a.writeFrames(c, r, reset)
		}
		cursor = r.Next
		if timer == nil {
			d := p.Wait + jitter(p.Wait)
			timer = time.NewTimer(d)
			defer timer.Stop()
		}
		a.m.parked.Inc()
		select {
		case <-changed:
			a.m.parked.Dec()
		case <-timer.C:
			a.m.parked.Dec()
			return a.writeFrames(c, r, nil)
		case <-ctx.Done():
			a.m.parked.Dec()
			return nil // client gone: nothing to write
		}
	}
}

// resume reads from the position stated for a reset: the head for
// unknown_epoch and future (nothing replayed), just before the oldest
// retained frame for expired.
func (a *API) resume(r ring.Result, match func(string) bool, lim ring.Limits) ring.Result {
	pos := r.Head
	if r.Reset == ring.Expired && a.store.Len() > 0 {
		pos = ring.ID{Epoch: r.Oldest.Epoch, Seq: r.Oldest.Seq - 1}
	}
	for range 3 {
		nr := a.store.After(pos, match, lim)
		if nr.Reset == ring.OK || nr.Err != nil {
			return nr
		}
		pos = nr.Head // trimmed meanwhile (or emptied): the head is always resumable
	}
	return ring.Result{Next: r.Head, Head: r.Head, Oldest: r.Oldest}
}

func jitter(wait time.Duration) time.Duration {
	j := min(wait/10, maxJitter)
	if j <= 0 {
		return 0
	}
	return rand.N(j)
}

type resetInfo struct {
	reason       ring.Reason
	requested    ring.ID
	oldest, head ring.ID
}

// pollAnswer is a /frames body shared by polls that asked the same.
type pollAnswer struct {
	gen            uint64
	cursor, oldest ring.ID
	query          string
	body           []byte
}

// writeFrames assembles the response by appending the frames' stored JSON
// verbatim: frames are never decoded or re-encoded.
func (a *API) writeFrames(c echo.Context, r ring.Result, reset *resetInfo) error {
	bp := getBuf()
	defer putBuf(bp)
	*bp = a.appendFrames(*bp, r, reset)
	return writeJSON(c, *bp, noStore)
}

// appendFrames appends a /frames body.
func (a *API) appendFrames(b []byte, r ring.Result, reset *resetInfo) []byte {
	b = append(b, `{"frames":[`...)
	for i, f := range r.Frames {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f.JSON...)
	}
	b = append(b, `],"next":"`...)
	b = r.Next.AppendTo(b)
	b = append(b, `","head":"`...)
	b = r.Head.AppendTo(b)
	b = append(b, `","oldest":"`...)
	b = r.Oldest.AppendTo(b)
	b = append(b, `","reset":`...)
	if reset == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"reason":"`...)
		b = append(b, reset.reason...)
		b = append(b, `","requested":"`...)
		b = reset.requested.AppendTo(b)
		b = append(b, `","oldest":"`...)
		b = reset.oldest.AppendTo(b)
		b = append(b, `","head":"`...)
		b = reset.head.AppendTo(b)
		b = append(b, `"}`...)
	}
	return append(b, "}\n"...)
}
