package hub

import (
	"runtime"
	"slices"
	"strings"
	"unicode/utf8"

	"livedash/dashboard/store"
)

// Replay reads the store in chunks of this size, writing each chunk before
// reading the next: memory per replaying subscriber stays bounded whatever
// the cap, and no read is open while a socket write blocks.
const (
	replayChunkFrames = 512
	replayChunkBytes  = 512 << 10
)

// replay sends the matching frames in (from, H] from the store, or a reset
// too_far when they exceed the replay cap. It returns a disconnect reason, or
// "" to go on live (also after a reset when the store trimmed past the cursor
// meanwhile). What is queued (hello) goes out with its first write; if the
// first read fails (DisconnectError) before anything went out, it is left
// queued, and run sends it alone before the stream ends.
//
// The common case — a client a few ticks behind — is one chunk, and in a
// reconnect storm many clients resume from the same cursor to the same head:
// the first chunk is read and encoded once and shared through h.replays
// (firstChunk). Only a replay of several chunks reads the rest itself.
//
// At most cap(h.replaySem) replays read or write at once: on a reconnect
// storm, thousands of concurrent store reads only thrash caches, and
// thousands of concurrent replay writes delay the live subscribers; queued
// ones finish in order instead of all at the end. A subscriber writing a
// shared chunk takes a slot too, for the same reason.
func (s *Subscriber) replay(from store.ID, H uint64, requested string) string {
	h := s.h
	held := false // holds a slot of h.replaySem
	defer func() {
		if held {
			<-h.replaySem
		}
	}()
	c, reset, reason := s.firstChunk(from, H, &held)
	if reason != "" {
		return reason
	}
	if reason := s.acquireReplaySlot(&held); reason != "" {
		return reason
	}
	h.m.replays.Inc()
	if reset == store.OK && c.tooFar {
		reset = store.TooFar
	}
	if reset != store.OK {
		s.queueReset(reset, requested, H)
		if err := s.count(s.sink.Flush()); err != nil {
			return writeErrReason(err)
		}
		return ""
	}
	if c.n > 0 {
		err := s.count(s.sink.Write([][]byte{c.b}, c.n))
		h.m.replayed.Add(float64(c.n))
		h.m.framesSent.Add(float64(c.n))
		if err != nil {
			return writeErrReason(err)
		}
	}
	if !c.more {
		return ""
	}

	// The rest, chunk by chunk, each written before the next is read.
	match := s.matcher()
	bp := GetBuf()
	defer PutBuf(bp)
	cursor := c.next
	for cursor.Seq < H {
		select {
		case <-s.gone:
			return DisconnectClient
		case <-s.done:
			return s.kickReason
		default:
		}
		// Let live deliveries queued behind this replay run first.
		runtime.Gosched()
		// Encode straight from the read's view into the write buffer: no
		// copy of the frames, one encoding. The read covers one bounded
		// chunk and no socket write.
		buf := (*bp)[:0]
		n := 0
		res := h.store.AfterView(cursor, match, store.Limits{Frames: replayChunkFrames, Bytes: replayChunkBytes, Until: H},
			func(seq uint64, _ int64, _, js []byte) {
				buf = s.enc.encode(buf, store.ID{Epoch: h.epoch, Seq: seq}, js)
				n++
			})
		*bp = buf
		if res.Err != nil {
			h.log.Error("stream replay read failed; closing the stream", "err", res.Err)
			return DisconnectError
		}
		if res.Reset != store.OK {
			s.queueReset(res.Reset, requested, H)
			if err := s.count(s.sink.Flush()); err != nil {
				return writeErrReason(err)
			}
			return ""
		}
		if n > 0 {
			err := s.count(s.sink.Write([][]byte{buf}, n))
			h.m.replayed.Add(float64(n))
			h.m.framesSent.Add(float64(n))
			if err != nil {
				return writeErrReason(err)
			}
		}
		cursor = res.Next
		if !res.More {
			break
		}
	}
	return ""
}

// firstChunk returns the first chunk of the replay (from, H] for s's topics
// and encoding: shared with other subscribers resuming with the same key, or
// read by s and then shared. reset is a cursor the store trimmed meanwhile
// (never shared); reason ends the subscriber. *held says whether s holds a
// replay slot (it takes one to read).
func (s *Subscriber) firstChunk(from store.ID, H uint64, held *bool) (*replayChunk, store.Reason, string) {
	h := s.h
	key := newReplayKey(s.enc.i, from.Seq, H, s.topics)
	for {
		c, build := h.replays.claim(key)
		if !build {
			select {
			case <-c.ready:
			default:
				// Another subscriber reads it, or waits for a slot to:
				// hello first, as for any wait.
				if err := s.count(s.sink.Flush()); err != nil {
					return nil, store.OK, writeErrReason(err)
				}
				select {
				case <-c.ready:
				case <-s.gone:
					return nil, store.OK, DisconnectClient
				case <-s.done:
					return nil, store.OK, s.kickReason
				}
			}
			if c.ok {
				return c, store.OK, ""
			}
			continue // its reader gave up: claim it again
		}
		if reason := s.acquireReplaySlot(held); reason != "" {
			h.replays.fail(c)
			return nil, store.OK, reason
		}
		select {
		case <-s.gone:
			h.replays.fail(c)
			return nil, store.OK, DisconnectClient
		case <-s.done:
			h.replays.fail(c)
			return nil, store.OK, s.kickReason
		default:
		}
		runtime.Gosched() // as in replay: live deliveries first
		reset, err := s.readFirstChunk(c, from, H)
		if err != nil {
			h.replays.fail(c)
			h.log.Error("stream replay read failed; closing the stream", "err", err)
			return nil, store.OK, DisconnectError
		}
		if reset != store.OK {
			h.replays.fail(c)
			return nil, reset, ""
		}
		h.replays.done(c)
		return c, store.OK, ""
	}
}

// readFirstChunk fills c from the store. When the first chunk already
// reaches H its size decides the cap; only a replay of several chunks needs
// the counting pass (tooFar), so that a replay is either complete or not
// started: never a silent partial replay.
func (s *Subscriber) readFirstChunk(c *replayChunk, from store.ID, H uint64) (store.Reason, error) {
	h := s.h
	bp := GetBuf()
	defer PutBuf(bp)
	buf := (*bp)[:0]
	n, size := 0, 0
	res := h.store.AfterView(from, s.matcher(), store.Limits{Frames: replayChunkFrames, Bytes: replayChunkBytes, Until: H},
		func(seq uint64, _ int64, _, js []byte) {
			buf = s.enc.encode(buf, store.ID{Epoch: h.epoch, Seq: seq}, js)
			n++
			size += len(js)
		})
	*bp = buf
	if res.Err != nil {
		return store.OK, res.Err
	}
	if res.Reset != store.OK {
		return res.Reset, nil
	}
	maxF, maxB := h.cfg.ReplayMaxFrames, h.cfg.ReplayMaxBytes
	over := (maxF > 0 && n > maxF) || (maxB > 0 && size > maxB)
	if over || (res.More && s.tooFar(from.Seq, H)) {
		c.tooFar = true
		return store.OK, nil
	}
	// An exact copy: the pooled buffer goes back, the entry keeps only its
	// bytes.
	c.b = slices.Clone(buf)
	c.n, c.next, c.more = n, res.Next, res.More
	return store.OK, nil
}

// tooFar says whether (from, H] holds more matching frames or bytes than the
// replay cap. It only counts (ScanView copies nothing).
func (s *Subscriber) tooFar(from, H uint64) bool {
	maxF, maxB := s.h.cfg.ReplayMaxFrames, s.h.cfg.ReplayMaxBytes
	if maxF <= 0 && maxB <= 0 {
		return false
	}
	if s.topics == nil {
		if maxF > 0 && H-from > uint64(maxF) {
			return true // seqs are consecutive: H-from frames
		}
		if maxB <= 0 {
			return false
		}
	}
	frames, bytes, over := 0, 0, false
	_, err := s.h.store.ScanView(from, int(H-from), func(seq uint64, _ int64, topic, js []byte) bool {
		if seq > H {
			return false
		}
		if s.topics != nil {
			if _, ok := s.topics[string(topic)]; !ok {
				return true
			}
		}
		frames++
		bytes += len(js)
		over = (maxF > 0 && frames > maxF) || (maxB > 0 && bytes > maxB)
		return !over
	})
	return err == nil && over // on error the replay itself reports it
}

// acquireReplaySlot takes a slot of h.replaySem unless *held. When none is
// free it sends what is queued first, then waits.
func (s *Subscriber) acquireReplaySlot(held *bool) string {
	if *held {
		return ""
	}
	select {
	case s.h.replaySem <- struct{}{}:
		*held = true
		return ""
	default:
	}
	if err := s.count(s.sink.Flush()); err != nil {
		return writeErrReason(err)
	}
	select {
	case s.h.replaySem <- struct{}{}:
		*held = true
		return ""
	case <-s.gone:
		return DisconnectClient
	case <-s.done:
		return s.kickReason
	}
}

// matcher is the topic filter for the store's reads (nil: every topic).
func (s *Subscriber) matcher() func([]byte) bool {
	if s.topics == nil {
		return nil
	}
	return func(t []byte) bool { _, ok := s.topics[string(t)]; return ok }
}

// QuoteRequested makes a client-sent cursor safe to send back in a reset
// event: invalid UTF-8 is replaced, control characters are dropped, and it is
// cut to store.MaxIDLen bytes; the JSON encoder then escapes what is left. A
// client's cursor is never logged: it could carry anything.
func QuoteRequested(s string) string {
	if len(s) > 4*store.MaxIDLen {
		s = s[:4*store.MaxIDLen]
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return -1
		}
		return r
	}, s)
	if len(s) > store.MaxIDLen {
		cut := store.MaxIDLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
