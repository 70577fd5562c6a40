package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"livedash/dashboard/store"
)

// pendingCommit is an Append waiting for the tail: the tail finds it by the
// commit token stored with the commit, hands the hooks the batches' samples
// (instead of decoding them from the JSON) and gives the Append the frames.
type pendingCommit struct {
	batches []store.Batch
	frames  []store.Frame // set by the tail before done closes
	done    chan struct{}
}

// idPrefixLen is the length of `{"id":"<16 hex>-0`, the start of a frame's
// JSON encoded with seq 0; the script receives what follows it.
const idPrefixLen = len(`{"id":"`) + 16 + 2

// Append commits batches as consecutive frames in one script call (one round
// trip), then waits until the tail has delivered them to the hooks, and
// returns them. It is not retried: an error means the call failed (Redis
// unreachable, timed out, or the epoch is gone), and is counted. When Redis
// received the script but its answer was lost, the frames may have been
// committed all the same; they then reach the hooks like another instance's.
func (s *Store) Append(batches []store.Batch) ([]store.Frame, error) {
	if len(batches) == 0 {
		return nil, nil
	}
	for _, b := range batches {
		if b.Topic == "" || len(b.Topic) > store.MaxTopicLen {
			return nil, fmt.Errorf("append topic %q: %w", b.Topic, store.ErrTopic)
		}
	}
	if err := s.lostOrClosed(); err != nil {
		return nil, err
	}
	s.Start()
	now := s.opts.Now()
	nowMS := now.UnixMilli()
	var keys []string
	var skipped int
	buf := make([]byte, 0, 256*len(batches))
	ends := make([]int, len(batches))
	tss := make([]int64, len(batches))
	for i, b := range batches {
		tss[i] = b.Time.UnixMilli()
		if b.Time.IsZero() {
			tss[i] = nowMS
		}
		var sk int
		buf, sk = store.AppendFrameJSON(buf, &keys, store.ID{Epoch: s.epoch}, b.Topic, tss[i], b.Samples)
		skipped += sk
		ends[i] = len(buf)
	}
	cutoff := ""
	if s.opts.MaxAge > 0 {
		cutoff = strconv.FormatInt(now.Add(-s.opts.MaxAge).UnixMilli(), 10)
	}
	token := s.instance + "-" + strconv.FormatUint(s.commits.Add(1), 10)
	args := make([]any, 0, 10+3*len(batches))
	args = append(args, s.epochHex, s.opts.MaxFrames, cutoff, s.opts.MaxAgeTrim, s.opts.TailSlack,
		s.bnd.Load().head, token, s.opts.Node, time.Now().UnixMilli(), len(batches))
	start := 0
	for i, b := range batches {
		args = append(args, b.Topic, tss[i], buf[start+idPrefixLen:ends[i]])
		start = ends[i]
	}

	p := &pendingCommit{batches: batches, done: make(chan struct{})}
	s.pmu.Lock()
	s.pending[token] = p
	s.pmu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), s.opts.DialTimeout+s.opts.WriteTimeout+s.opts.ReadTimeout)
	t0 := time.Now()
	res, err := appendScript.Run(ctx, s.rdb, s.k.all(), args...).Slice()
	cancel()
	s.m.roundTrip("append", time.Since(t0))
	var first uint64
	if err == nil {
		if len(res) != 2 {
			err = fmt.Errorf("%w: append returned %d values", errBadData, len(res))
		} else {
			first, err = parseSeq(res[0])
		}
	}
	if err != nil {
		s.pmu.Lock()
		delete(s.pending, token)
		s.pmu.Unlock()
		return nil, s.appendFailed(err, len(batches))
	}
	s.mu.Lock()
	s.lastErr = nil
	s.mu.Unlock()
	s.m.appended(time.Since(t0), len(batches), skipped)
	s.noteTop(first + uint64(len(batches)) - 1)

	timer := time.NewTimer(s.opts.DeliverTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.frames, nil
	case <-s.lost:
		return nil, s.lostOrClosed()
	case <-s.stop:
	case <-timer.C:
		// Not waiting any longer: the tail will decode this commit's
		// samples from its JSON, as for another instance's, so nothing
		// stays held for an Append that has returned.
		s.pmu.Lock()
		delete(s.pending, token)
		s.pmu.Unlock()
		s.m.deliverTimeout()
		s.log.Warn("frames committed to Redis but not yet delivered by the tail; returning without waiting longer",
			"url", s.url, "first", first, "frames", len(batches), "waited", s.opts.DeliverTimeout.String())
	}
	// Committed, not delivered here yet: build the frames as the script
	// stored them. The tail still delivers them when it gets there.
	frames := make([]store.Frame, len(batches))
	for i, b := range batches {
		id := store.ID{Epoch: s.epoch, Seq: first + uint64(i)}
		js, _ := store.AppendFrameJSON(nil, &keys, id, b.Topic, tss[i], b.Samples)
		frames[i] = store.Frame{ID: id, Topic: b.Topic, TS: tss[i], JSON: js, Samples: b.Samples}
	}
	return frames, nil
}

// appendFailed records a failed Append: counted, reported by Err, logged.
// An epoch that is gone, or a Redis behind this instance, makes the Store
// Lost.
func (s *Store) appendFailed(err error, frames int) error {
	msg := redactErr(err.Error(), s.opts.URL)
	kind := errKind(err)
	s.m.appendFailed(kind)
	switch {
	case strings.HasPrefix(msg, "LIVEDASH_EPOCH"):
		found := strings.TrimSpace(strings.TrimPrefix(msg, "LIVEDASH_EPOCH"))
		s.markLost(fmt.Errorf("%w: epoch %s, Redis has %s", ErrEpochLost, s.epochHex, found))
		return s.lostOrClosed()
	case strings.HasPrefix(msg, "LIVEDASH_BEHIND"):
		s.retire(strings.TrimSpace(strings.TrimPrefix(msg, "LIVEDASH_BEHIND")))
		return s.lostOrClosed()
	}
	e := fmt.Errorf("append %d frames to Redis %s: %s", frames, s.url, msg)
	if errors.Is(err, context.DeadlineExceeded) {
		e = fmt.Errorf("append %d frames to Redis %s: no answer within %v", frames, s.url, s.opts.DialTimeout+s.opts.WriteTimeout+s.opts.ReadTimeout)
	}
	s.mu.Lock()
	s.lastErr = e
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return store.ErrClosed
	}
	// While Redis is away every tick fails the same way: one line per ten
	// seconds says so, with how many failures it stands for.
	s.mu.Lock()
	s.failedSinceLog++
	logNow := time.Since(s.failLoggedAt) >= 10*time.Second
	n := s.failedSinceLog
	if logNow {
		s.failLoggedAt, s.failedSinceLog = time.Now(), 0
	}
	s.mu.Unlock()
	if logNow {
		s.log.Error("store append failed; frames not stored", "url", s.url, "frames", frames, "failed_appends", n, "err", msg)
	}
	return e
}

// retire is called when Redis's head is behind this Store's: Redis lost
// frames it had acknowledged. The epoch is replaced in Redis (once, by a
// script that checks it still applies) so no instance hands those seqs out
// again, and this Store becomes Lost.
func (s *Store) retire(redisHead string) {
	head := s.bnd.Load().head
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.DialTimeout+s.opts.ReadTimeout+s.opts.WriteTimeout)
	defer cancel()
	newEpoch := fmt.Sprintf("%016x", randUint64())
	n, err := retireScript.Run(ctx, s.rdb, s.k.all(), s.epochHex, head, newEpoch).Int()
	if err == nil && n == 1 {
		s.log.Warn("Redis is behind frames this instance delivered; retired the epoch", "url", s.url,
			"epoch", s.epochHex, "new_epoch", newEpoch, "redis_head", redisHead, "head", head)
	}
	s.markLost(fmt.Errorf("%w: Redis's head %s is behind frame %d, delivered here", ErrEpochLost, redisHead, head))
}

// noteTop records a head Redis reported, for the lag in frames.
func (s *Store) noteTop(seq uint64) {
	for {
		cur := s.redisTop.Load()
		if seq <= cur || s.redisTop.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// errKind classifies an append error for the metric's label.
func errKind(err error) string {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "LIVEDASH_EPOCH"), strings.HasPrefix(msg, "LIVEDASH_BEHIND"):
		return "epoch"
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "timeout"):
		return "timeout"
	case strings.Contains(msg, "connect") || strings.Contains(msg, "closed") || strings.Contains(msg, "EOF") ||
		strings.Contains(msg, "reset by peer") || strings.Contains(msg, "broken pipe"):
		return "unreachable"
	}
	return "other"
}
