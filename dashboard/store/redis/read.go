package redis

import (
	"context"
	"time"
	"unsafe"

	"livedash/dashboard/store"
)

// Reads serve what this Store has delivered: the head and oldest they check
// cursors against are the ones the tail published with the last commit it
// delivered, and they read no frame above that head, so a reader never
// returns a frame the hub and the hooks have not seen yet (a client could
// otherwise resume from an ID this instance still calls the future).
//
// Frames are read by XRANGE from "<cursor+1>-0": a seek, never a scan. The
// stream keeps frames only ever from the front, so when the first entry a
// read gets is not the one right after the cursor, the frames in between are
// gone (trimmed since the bounds were published): that read reports Expired,
// in the same round trip as the frames.

// readChunk is how many entries one XRANGE asks for at most.
const readChunk = 1024

func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opts.DialTimeout+s.opts.WriteTimeout+s.opts.ReadTimeout)
}

// xrange reads entries from seq from to seq to (inclusive), at most count.
func (s *Store) xrange(from, to uint64, count int) ([]any, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	t0 := time.Now()
	res, err := s.rdb.Do(ctx, "XRANGE", s.k.frames, entryID(from), entryID(to), "COUNT", count).Slice()
	s.m.roundTrip("read", time.Since(t0))
	return res, err
}

// bytesOf views a string's bytes without copying; the caller must not
// write to them.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// After returns the frames after cursor whose topic matches (nil: all),
// within lim, copied.
func (s *Store) After(cursor store.ID, match func(topic string) bool, lim store.Limits) store.Result {
	var bmatch func([]byte) bool
	if match != nil {
		bmatch = func(topic []byte) bool { return match(string(topic)) }
	}
	var frames []store.Frame
	var arena arena
	topics := map[string]string{}
	r := s.AfterView(cursor, bmatch, lim, func(seq uint64, ts int64, topic, js []byte) {
		t, ok := topics[string(topic)]
		if !ok {
			t = string(topic)
			topics[t] = t
		}
		frames = append(frames, store.Frame{ID: store.ID{Epoch: s.epoch, Seq: seq}, Topic: t, TS: ts, JSON: arena.copy(js)})
	})
	if r.Err == nil {
		r.Frames = frames
	}
	return r
}

// AfterView is After without the copy: fn sees each matching frame's seq,
// ts, topic and JSON, valid only during the call. The frames are read in
// chunks of at most readChunk entries, one round trip each.
func (s *Store) AfterView(cursor store.ID, match func(topic []byte) bool, lim store.Limits, fn func(seq uint64, ts int64, topic, json []byte)) store.Result {
	if lim.Scan <= 0 {
		lim.Scan = 100000
	}
	if cursor.Epoch == s.epoch && cursor.Seq > s.bnd.Load().head {
		s.CatchUp(cursor.Seq) // another instance's cursor: wait for the tail
	}
	b := s.bnd.Load()
	var r store.Result
	r.Head = store.ID{Epoch: s.epoch, Seq: b.head}
	r.Oldest = store.ID{Epoch: s.epoch, Seq: min(b.oldest, b.head)}
	if b.oldest > b.head {
		r.Oldest = r.Head
	}
	if cursor.Epoch != s.epoch {
		r.Reset = store.UnknownEpoch
		return r
	}
	if err := s.lostOrClosed(); err != nil {
		r.Err = err
		return r
	}
	if r.Reset = store.CheckBounds(cursor.Seq, b.oldest, b.head); r.Reset != store.OK {
		return r
	}
	end := b.head
	if lim.Until > 0 {
		end = max(min(b.head, lim.Until), cursor.Seq)
	}
	next := cursor.Seq
	visited, frames, bytesOut := 0, 0, 0
	firstChunk := true
	for next < end && !r.More {
		want := min(end-next, uint64(lim.Scan-visited), readChunk)
		if match == nil && lim.Frames > 0 {
			want = min(want, uint64(lim.Frames-frames))
		}
		if want == 0 {
			r.More = true
			break
		}
		es, err := s.xrange(next+1, end, int(want))
		if err != nil {
			r.Err = err
			return r
		}
		if len(es) == 0 || entrySeq(es[0]) != next+1 {
			// Trimmed since the bounds were published.
			if firstChunk {
				r.Reset = store.Expired
				if len(es) > 0 {
					r.Oldest.Seq = entrySeq(es[0])
				} else {
					r.Oldest = r.Head
				}
				return r
			}
			// Frames already went to fn: stop here, the next read from
			// Next reports the trim.
			r.More = true
			break
		}
		firstChunk = false
		for _, v := range es {
			e, err := parseEntry(v)
			if err != nil || !s.ownJSON(e.json) {
				r.Err = ErrEpochLost
				if err != nil {
					r.Err = err
				}
				return r
			}
			if e.seq != next+1 {
				r.More = true // a hole: stop before it
				break
			}
			if visited >= lim.Scan || (lim.Frames > 0 && frames >= lim.Frames) {
				r.More = true
				break
			}
			topic := bytesOf(e.topic)
			if match == nil || match(topic) {
				if lim.Bytes > 0 && frames > 0 && bytesOut+len(e.json) > lim.Bytes {
					r.More = true
					break
				}
				bytesOut += len(e.json)
				frames++
				fn(e.seq, e.ts, topic, bytesOf(e.json))
			}
			next = e.seq
			visited++
		}
		if !r.More && next < end && (visited >= lim.Scan || (lim.Frames > 0 && frames >= lim.Frames)) {
			r.More = true
		}
	}
	r.Next = store.ID{Epoch: s.epoch, Seq: next}
	if !r.More {
		r.Next.Seq = end
	}
	return r
}

// entrySeq is the seq of a raw entry, 0 when it cannot be read.
func entrySeq(v any) uint64 {
	e, err := parseEntry(v)
	if err != nil {
		return 0
	}
	return e.seq
}

// ScanView calls fn for every retained frame with seq > after, oldest first,
// until fn returns false or max (> 0) frames were visited, and returns the
// last seq visited.
func (s *Store) ScanView(after uint64, max int, fn func(seq uint64, ts int64, topic, json []byte) bool) (last uint64, err error) {
	last = after
	if err := s.lostOrClosed(); err != nil {
		return last, err
	}
	b := s.bnd.Load()
	next := after
	if b.oldest > 0 && next < b.oldest-1 {
		next = b.oldest - 1
	}
	n := 0
	for next < b.head && (max <= 0 || n < max) {
		want := min(b.head-next, readChunk)
		if max > 0 {
			want = min(want, uint64(max-n))
		}
		es, err := s.xrange(next+1, b.head, int(want))
		if err != nil {
			return last, err
		}
		if len(es) == 0 {
			return last, nil // trimmed meanwhile
		}
		for _, v := range es {
			e, err := parseEntry(v)
			if err != nil {
				return last, err
			}
			if !s.ownJSON(e.json) {
				return last, ErrEpochLost
			}
			last, next = e.seq, e.seq
			n++
			if !fn(e.seq, e.ts, bytesOf(e.topic), bytesOf(e.json)) {
				return last, nil
			}
		}
	}
	return last, nil
}

// SeekTime returns the seq of the first retained frame whose ts ≥ ms (Head+1
// when every frame is older), by a binary search that runs inside Redis (one
// round trip). ts follows seq except around wall-clock jumps, where the
// answer is approximate.
func (s *Store) SeekTime(ms int64) uint64 {
	b := s.bnd.Load()
	lo, hi := b.oldest, b.head+1
	if lo >= hi {
		return hi
	}
	ctx, cancel := s.ctx()
	defer cancel()
	t0 := time.Now()
	v, err := seekScript.Run(ctx, s.rdb, []string{s.k.frames}, lo, hi, ms).Int64()
	s.m.roundTrip("seek", time.Since(t0))
	if err != nil || v < int64(lo) || v > int64(hi) {
		return lo
	}
	return uint64(v)
}

// arena copies many small byte slices with few allocations: slices are
// carved from chunks that double from 2 KiB to 64 KiB (so a one-frame read
// stays small) and never move.
type arena struct{ chunk []byte }

func (a *arena) copy(b []byte) []byte {
	if len(b) > 16<<10 {
		return append([]byte(nil), b...)
	}
	if cap(a.chunk)-len(a.chunk) < len(b) {
		a.chunk = make([]byte, 0, max(min(2*cap(a.chunk), 64<<10), 2<<10, len(b)))
	}
	start := len(a.chunk)
	a.chunk = append(a.chunk, b...)
	return a.chunk[start:len(a.chunk):len(a.chunk)]
}
