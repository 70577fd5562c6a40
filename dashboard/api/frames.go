package api

import (
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"livedash/dashboard/apierr"
	"livedash/dashboard/clientip"
	"livedash/dashboard/store"
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
// Cursor semantics (the same IDs as the SSE stream):
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
// matches, the handler parks on the API's commit signal (one channel
// receive, no polling) and re-reads after each commit; it answers as soon as
// a frame matches (woken by OnCommit; near the head the frames come from the
// recent window in memory), or at wait plus a random jitter of up to 10 % (at
// most 1 s) with empty frames. `next` never moves backwards; with no match it
// may move past frames of other topics. A response with a reset is never
// held. A parked poll is an ordinary request: it answers through Echo and
// the server's middleware, and a client that goes away (the request's
// context is done) ends it at once, with nothing written.
func (a *API) frames(c echo.Context) error {
	pl, aerr := a.newPoll(c.QueryString())
	if aerr != nil {
		return aerr
	}
	var timer *time.Timer
	ctx := c.Request().Context()
	for {
		changed, closed, gen := a.changed() // before reading, so no commit slips between
		an, done, err := a.read(&pl, gen, closed)
		if err != nil {
			return err
		}
		if done {
			defer an.release()
			return writeJSON(c, an.body(), noStore)
		}
		if timer == nil {
			client := clientip.Key(clientip.Of(c.Request()))
			if !a.parkSlot(client) {
				c.Response().Header().Set("Retry-After", "1")
				return apierr.New(http.StatusTooManyRequests, "too_many_polls",
					"this client has %d long polls waiting already (http.max_polls_per_client); retry later", a.opts.MaxParkedPerClient)
			}
			defer a.parkRelease(client)
			timer = time.NewTimer(pl.p.Wait + jitter(pl.p.Wait))
			defer timer.Stop()
		}
		switch a.park(changed, timer.C, ctx.Done()) {
		case parkExpired:
			an := a.emptyAnswer(&pl)
			defer an.release()
			return writeJSON(c, an.body(), noStore)
		case parkLeft:
			return nil // client gone: nothing to write
		}
	}
}

// parkSlot takes one of client's parked-poll slots, or reports that it has
// none left. A poll takes its slot when it first parks and keeps it until it
// answers, across the wake-ups that find nothing for it.
func (a *API) parkSlot(client netip.Addr) bool {
	a.parkMu.Lock()
	defer a.parkMu.Unlock()
	if n := a.opts.MaxParkedPerClient; n > 0 && a.parkedClient[client] >= n {
		return false
	}
	a.parkedClient[client]++
	return true
}

func (a *API) parkRelease(client netip.Addr) {
	a.parkMu.Lock()
	defer a.parkMu.Unlock()
	if a.parkedClient[client]--; a.parkedClient[client] <= 0 {
		delete(a.parkedClient, client)
	}
}

// parkEnd is why a parked long poll stopped waiting.
type parkEnd int

const (
	parkWoken   parkEnd = iota // a commit (or Close): read again
	parkExpired                // the wait is over: answer with no frames
	parkLeft                   // the client went away
)

// park waits, counted in the parked-polls gauge, for the next commit
// (changed), the end of the wait (expiry) or the client leaving (left).
func (a *API) park(changed <-chan struct{}, expiry <-chan time.Time, left <-chan struct{}) parkEnd {
	a.m.parked.Inc()
	defer a.m.parked.Dec()
	select {
	case <-changed:
		return parkWoken
	case <-expiry:
		return parkExpired
	case <-left:
		return parkLeft
	}
}

// poll is one /frames request between reads of the store.
type poll struct {
	p      FramesParams
	query  string // the raw query: part of the shared answers' key
	match  func(topic string) bool
	lim    store.Limits
	cursor store.ID
	last   store.Result // the last read: what a wait that ends unanswered returns
	// unknown are the topics of the filter that are not known (KnownTopic):
	// the answer names them, and the poll waits for them all the same (a
	// first push makes a topic known).
	unknown []string
}

// newPoll parses a /frames query and places the cursor.
func (a *API) newPoll(raw string) (poll, *apierr.Error) {
	p, aerr := ParseFramesParams(raw, a.cfg)
	if aerr != nil {
		return poll{}, aerr
	}
	pl := poll{p: p, query: raw, lim: store.Limits{Frames: p.Limit, Bytes: maxResponseBytes, Scan: maxScan},
		unknown: a.UnknownTopics(p.Topics)}
	switch len(p.Topics) {
	case 0:
	case 1:
		t := p.Topics[0]
		pl.match = func(s string) bool { return s == t }
	default:
		set := make(map[string]struct{}, len(p.Topics))
		for _, t := range p.Topics {
			set[t] = struct{}{}
		}
		pl.match = func(s string) bool { _, ok := set[s]; return ok }
	}
	switch p.Mode {
	case AfterHead:
		pl.cursor = a.store.Head()
	case AfterOldest:
		pl.cursor = a.store.Oldest()
		if a.store.Len() > 0 {
			pl.cursor.Seq--
		}
	case AfterID:
		pl.cursor = p.After
	}
	return pl, nil
}

// answer is a /frames body: shared by the polls that asked the same
// (immutable), or in a pooled buffer that release returns.
type answer struct {
	shared *pollAnswer
	buf    *[]byte
}

func (an answer) body() []byte {
	if an.shared != nil {
		return an.shared.body
	}
	return *an.buf
}

func (an answer) release() {
	if an.buf != nil {
		putBuf(an.buf)
	}
}

func storeUnavailable(err error) *apierr.Error {
	return &apierr.Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable",
		Message: "the store could not be read; try again", Err: err}
}

// read reads once for pl, with gen the window generation taken (by
// changed) before the read. done reports an answer: frames, a reset, no
// wait, or the API closing. Otherwise pl's cursor has moved past what was
// read and the poll waits for the next commit.
func (a *API) read(pl *poll, gen uint64, closed bool) (answer, bool, error) {
	for {
		oldest := a.store.Oldest()
		if pa := a.lastPoll.Load(); pa != nil && pa.gen == gen && pa.cursor == pl.cursor &&
			pa.oldest == oldest && pa.query == pl.query && pl.unknown == nil {
			return answer{shared: pa}, true, nil
		}
		r, ok := a.readRecent(pl.cursor, pl.match, pl.lim)
		if !ok {
			r = a.store.After(pl.cursor, pl.match, pl.lim)
		}
		if r.Err != nil {
			return answer{}, false, storeUnavailable(r.Err)
		}
		var reset *resetInfo
		if r.Reset != store.OK {
			if pl.p.Mode == AfterOldest && r.Reset == store.Expired {
				// Trimmed between Oldest and After: start again from the new oldest.
				pl.cursor = store.ID{Epoch: r.Oldest.Epoch, Seq: r.Oldest.Seq - 1}
				continue
			}
			reset = &resetInfo{reason: r.Reset, requested: pl.cursor, oldest: r.Oldest, head: r.Head}
			r = a.resume(r, pl.match, pl.lim)
			if r.Err != nil {
				return answer{}, false, storeUnavailable(r.Err)
			}
		}
		if ok && len(r.Frames) > 0 && reset == nil && pl.unknown == nil {
			// The answer depends only on the window (gen), the cursor, the
			// store's oldest and the query (topics, limit): the thousands of
			// polls one commit releases mostly ask the same, so it is built
			// once and shared.
			pa := &pollAnswer{gen: gen, cursor: pl.cursor, oldest: oldest, query: pl.query,
				body: a.appendFrames(nil, r, nil, nil)}
			a.lastPoll.Store(pa)
			return answer{shared: pa}, true, nil
		}
		if len(r.Frames) > 0 || reset != nil || pl.p.Wait <= 0 || closed {
			bp := getBuf()
			*bp = a.appendFrames(*bp, r, reset, pl.unknown)
			return answer{buf: bp}, true, nil
		}
		pl.cursor, pl.last = r.Next, r
		return answer{}, false, nil
	}
}

// emptyAnswer is the answer of a wait that ended with no matching frame:
// no frames, the cursor as far as it got.
func (a *API) emptyAnswer(pl *poll) answer {
	bp := getBuf()
	*bp = a.appendFrames(*bp, pl.last, nil, pl.unknown)
	return answer{buf: bp}
}

// resume reads from the position stated for a reset: the head for
// unknown_epoch and future (nothing replayed), just before the oldest
// retained frame for expired.
func (a *API) resume(r store.Result, match func(string) bool, lim store.Limits) store.Result {
	pos := r.Head
	if r.Reset == store.Expired && a.store.Len() > 0 {
		pos = store.ID{Epoch: r.Oldest.Epoch, Seq: r.Oldest.Seq - 1}
	}
	for range 3 {
		nr := a.store.After(pos, match, lim)
		if nr.Reset == store.OK || nr.Err != nil {
			return nr
		}
		pos = nr.Head // trimmed meanwhile (or emptied): the head is always resumable
	}
	return store.Result{Next: r.Head, Head: r.Head, Oldest: r.Oldest}
}

func jitter(wait time.Duration) time.Duration {
	j := min(wait/10, maxJitter)
	if j <= 0 {
		return 0
	}
	return rand.N(j)
}

type resetInfo struct {
	reason       store.Reason
	requested    store.ID
	oldest, head store.ID
}

// pollAnswer is a /frames body shared by the polls that asked the same of
// the same recent window (see read). It is immutable once stored.
type pollAnswer struct {
	gen            uint64
	cursor, oldest store.ID
	query          string
	body           []byte
}

// appendFrames appends a /frames body; unknown topics of the filter, if
// any, are named in "unknown_topics".
func (a *API) appendFrames(b []byte, r store.Result, reset *resetInfo, unknown []string) []byte {
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
	if len(unknown) > 0 {
		b = append(b, `,"unknown_topics":[`...)
		for i, t := range unknown {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, t)
		}
		b = append(b, ']')
	}
	return append(b, "}\n"...)
}
