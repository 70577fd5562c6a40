package bolt

import (
	"encoding/binary"

	"livedash/dashboard/store"

	bbolt "go.etcd.io/bbolt"
)

// Check says whether reading after id would return every retained frame after
// it. A cursor equal to the head is fine (nothing to read); a cursor just
// before the oldest retained frame is fine too.
func (s *Store) Check(id store.ID) store.Reason {
	if id.Epoch != s.epoch {
		return store.UnknownEpoch
	}
	// An append stores its new oldest before its new head, so an append that
	// trims past its old head can be seen half done; as of the head loaded
	// here the ring is then empty, and the head still a valid cursor.
	head := s.head.Load()
	return store.CheckBounds(id.Seq, min(s.oldest.Load(), head+1), head)
}

// After returns the frames after cursor that match (nil match = all), within
// lim, reading by B+tree seek: O(log n + visited). It runs in one read
// transaction that copies what it returns and is closed before returning.
func (s *Store) After(cursor store.ID, match func(topic string) bool, lim store.Limits) store.Result {
	var bmatch func([]byte) bool
	if match != nil {
		bmatch = func(topic []byte) bool { return match(string(topic)) }
	}
	var arena arena
	var topics interner
	var frames []store.Frame
	r := s.AfterView(cursor, bmatch, lim, func(seq uint64, ts int64, topic, js []byte) {
		frames = append(frames, store.Frame{ID: store.ID{Epoch: s.epoch, Seq: seq}, Topic: topics.intern(topic), TS: ts, JSON: arena.copy(js)})
	})
	if r.Err == nil {
		r.Frames = frames
	}
	return r
}

// AfterView is After without the copy: fn is called for every matching frame
// within lim, in order, inside the read transaction; topic and json alias the
// store and are valid only during fn (copy or encode what you keep), and fn
// must not block (no socket writes: the transaction stays open while it
// runs). The Result is After's — same Next, Head, Oldest, More, Reset and Err
// — with Frames nil. On a Reset fn is never called; on Err the frames fn
// saw must be discarded. The cursor is checked against the oldest retained
// frame inside the same transaction, so a trim between two calls is reported
// as Expired, never skipped silently.
func (s *Store) AfterView(cursor store.ID, match func(topic []byte) bool, lim store.Limits, fn func(seq uint64, ts int64, topic, json []byte)) store.Result {
	if lim.Scan <= 0 {
		lim.Scan = 100000
	}
	var r store.Result
	if cursor.Epoch != s.epoch {
		r.Head, r.Oldest, r.Reset = s.Head(), s.Oldest(), store.UnknownEpoch
		return r
	}
	var bytesOut, frames int
	r.Err = s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketFrames)
		c := b.Cursor()
		hv := tx.Bucket(bucketMeta).Get(keyHead)
		if len(hv) != 8 {
			return errBadRecord
		}
		// Read no further than what has been published: a frame committed
		// but not yet counted in Head must not be returned (a client could
		// then resume with an ID that the hub still calls the future). The
		// published head is loaded inside the transaction, so it lags the
		// transaction's head by at most the one commit being published.
		head := min(binary.BigEndian.Uint64(hv), s.head.Load())
		oldest := head + 1
		if k, _ := c.First(); k != nil {
			// That commit may have trimmed past the published head: then,
			// as of that head, nothing is retained and the head is still a
			// valid cursor.
			oldest = min(binary.BigEndian.Uint64(k), head+1)
		}
		r.Head = store.ID{Epoch: s.epoch, Seq: head}
		r.Oldest = store.ID{Epoch: s.epoch, Seq: oldest}
		if oldest > head {
			r.Oldest = r.Head
		}
		if r.Reset = store.CheckBounds(cursor.Seq, oldest, head); r.Reset != store.OK {
			return nil
		}
		end := head
		if lim.Until > 0 {
			end = max(min(head, lim.Until), cursor.Seq)
		}
		next := cursor.Seq
		visited := 0
		for k, v := c.Seek(seqKey(cursor.Seq + 1)); k != nil; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			if seq > end {
				break
			}
			if visited >= lim.Scan || (lim.Frames > 0 && frames >= lim.Frames) {
				r.More = true
				break
			}
			ts, topic, js, err := parseRecord(v)
			if err != nil {
				s.badRecord(seq)
			} else if match == nil || match(topic) {
				if lim.Bytes > 0 && frames > 0 && bytesOut+len(js) > lim.Bytes {
					r.More = true
					break
				}
				bytesOut += len(js)
				frames++
				fn(seq, ts, topic, js)
			}
			next = seq
			visited++
		}
		if !r.More {
			next = end
		}
		r.Next = store.ID{Epoch: s.epoch, Seq: next}
		return nil
	})
	return r
}

// ScanView calls fn for every frame with seq > after, oldest first, until fn
// returns false or max frames were visited. The topic and json slices alias
// the store and are valid only during fn: copy what you keep. It returns the
// last seq visited. A read transaction is held for the whole scan, so fn must
// not block (no socket writes); it is meant for building in-memory indexes.
func (s *Store) ScanView(after uint64, max int, fn func(seq uint64, ts int64, topic, json []byte) bool) (last uint64, err error) {
	last = after
	err = s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketFrames).Cursor()
		n := 0
		for k, v := c.Seek(seqKey(after + 1)); k != nil && (max <= 0 || n < max); k, v = c.Next() {
			last = binary.BigEndian.Uint64(k)
			n++
			ts, topic, js, err := parseRecord(v)
			if err != nil {
				s.badRecord(last)
				continue
			}
			if !fn(last, ts, topic, js) {
				break
			}
		}
		return nil
	})
	return last, err
}

// SeekTime returns the seq of the first retained frame whose ts ≥ ms, by
// binary search over seqs (ts follows seq except around wall-clock jumps, where
// the answer is approximate by at most the jump). It returns head+1 when every
// frame is older.
func (s *Store) SeekTime(ms int64) uint64 {
	lo, hi := s.oldest.Load(), s.head.Load()+1
	_ = s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketFrames)
		for lo < hi {
			mid := lo + (hi-lo)/2
			v := b.Get(seqKey(mid))
			if v == nil { // trimmed meanwhile
				lo = mid + 1
				continue
			}
			ts, _, _, err := parseRecord(v)
			if err != nil || ts < ms {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		return nil
	})
	return lo
}

// arena copies many small byte slices out of a transaction with few
// allocations: slices are carved from chunks that double from 2 KiB to 64 KiB
// (so a one-frame read stays small) and never move.
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

// interner turns the few distinct topics of a read into shared strings.
type interner map[string]string

func (in *interner) intern(b []byte) string {
	if s, ok := (*in)[string(b)]; ok {
		return s
	}
	if *in == nil {
		*in = interner{}
	}
	s := string(b)
	(*in)[s] = s
	return s
}

// badRecord counts a stored record that cannot be parsed. Reads skip it (a
// frame lost to a damaged page is better than a ring nobody can read past);
// the start-up check moves a damaged file aside before it gets this far.
func (s *Store) badRecord(seq uint64) {
	s.m.badRecord()
	if s.badLogged.CompareAndSwap(false, true) {
		s.log.Error("store holds an unreadable frame; skipping it (logged once)", "path", s.path, "seq", seq)
	}
}
