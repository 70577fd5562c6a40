package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"livedash/dashboard/store"
)

// entry is one stream entry, parsed. The strings alias the reply.
type entry struct {
	seq              uint64
	topic, json      string
	ts               int64
	last             bool // closes a commit: the fields below are set
	oldest           uint64
	token, node      string
	committedAtMilli int64
}

// parseEntry parses [id, [field, value, …]].
func parseEntry(v any) (entry, error) {
	var e entry
	a, ok := v.([]any)
	if !ok || len(a) != 2 {
		return e, fmt.Errorf("%w: stream entry %T", errBadData, v)
	}
	id, _ := a[0].(string)
	seqText, rest, ok := strings.Cut(id, "-")
	if !ok || rest != "0" {
		return e, fmt.Errorf("%w: stream entry ID %q", errBadData, id)
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return e, fmt.Errorf("%w: stream entry ID %q", errBadData, id)
	}
	e.seq = seq
	fs, _ := a[1].([]any)
	haveJ := false
	for i := 0; i+1 < len(fs); i += 2 {
		k, _ := fs[i].(string)
		val, _ := fs[i+1].(string)
		switch k {
		case "j":
			e.json = val
			e.topic, e.ts, haveJ = splitFrame(val)
		case "o":
			e.oldest, err = strconv.ParseUint(val, 10, 64)
			e.last = err == nil
		case "c":
			e.token = val
		case "n":
			e.node = val
		case "w":
			e.committedAtMilli, _ = strconv.ParseInt(val, 10, 64)
		}
	}
	if !haveJ {
		return e, fmt.Errorf("%w: stream entry %s has no readable frame", errBadData, id)
	}
	return e, nil
}

// splitFrame reads the topic and ts of a frame's wire JSON, which starts
// {"id":"<epoch>-<seq>","topic":<JSON string>,"ts":<integer>, as
// store.AppendFrameJSON writes it. The topic aliases js unless it holds an
// escape.
func splitFrame(js string) (topic string, ts int64, ok bool) {
	const topicKey, tsKey = `","topic":"`, `,"ts":`
	i := strings.Index(js, topicKey)
	if i < 0 {
		return "", 0, false
	}
	start := i + len(topicKey)
	escaped := false
	end := -1
	for j := start; j < len(js); j++ {
		if c := js[j]; c == '\\' {
			escaped = true
			j++
		} else if c == '"' {
			end = j
			break
		}
	}
	if end < 0 || !strings.HasPrefix(js[end+1:], tsKey) {
		return "", 0, false
	}
	topic = js[start:end]
	if escaped {
		if err := json.Unmarshal([]byte(js[start-1:end+1]), &topic); err != nil {
			return "", 0, false
		}
	}
	num := js[end+1+len(tsKey):]
	n := strings.IndexByte(num, ',')
	if n < 0 {
		return "", 0, false
	}
	ts, err := strconv.ParseInt(num[:n], 10, 64)
	return topic, ts, err == nil
}

// tailBatch is how many entries one XREAD returns at most.
const tailBatch = 1024

// tail reads the stream from the last entry it saw and delivers every commit,
// in stream order, until Close. See deliver.
func (s *Store) tail() {
	defer close(s.tailDone)
	defer s.releasePending()
	select {
	case <-s.started:
	case <-s.stop:
		return
	}
	read := s.bnd.Load().head // last entry read (delivered or held in part)
	var part []entry          // the commit being read, when a read ended inside it
	backoff := 100 * time.Millisecond
	down := false
	lastCheck := time.Now()
	for {
		if s.isStopped() {
			return
		}
		if err := s.lostOrClosed(); err != nil {
			return
		}
		if s.beforeRead != nil {
			s.beforeRead()
		}
		ctx := context.Background()
		res, err := s.tailc.Do(ctx, "XREAD", "COUNT", tailBatch, "BLOCK", s.opts.TailBlock.Milliseconds(),
			"STREAMS", s.k.frames, entryID(read)).Slice()
		if err != nil && !errors.Is(err, goredis.Nil) {
			if s.isStopped() {
				return
			}
			if !down {
				down = true
				s.log.Error("lost Redis; the tail reconnects with backoff", "url", s.url, "err", redactErr(err.Error(), s.opts.URL))
			}
			s.setTailErr(fmt.Errorf("reading the ring from Redis %s: %s", s.url, redactErr(err.Error(), s.opts.URL)))
			select {
			case <-s.stop:
				return
			case <-time.After(jitter(backoff)):
			}
			backoff = min(2*backoff, s.opts.RetryMax)
			continue
		}
		if down {
			// Back: the epoch comes first, then the reads resume from
			// the last ID seen.
			if !s.checkEpoch() {
				return
			}
			down, backoff = false, 100*time.Millisecond
			s.m.reconnected()
			s.log.Info("Redis is back; the tail resumes", "url", s.url, "after_seq", read)
			// Redis answers again: an append that failed for want of it
			// no longer says anything about the store (the next one will
			// if something else is wrong).
			s.mu.Lock()
			s.tailErr, s.lastErr = nil, nil
			s.mu.Unlock()
		}
		if errors.Is(err, goredis.Nil) || len(res) == 0 {
			// Nothing new within TailBlock: a good moment to check that
			// the epoch still exists and to measure the stream.
			if !s.checkEpoch() {
				return
			}
			lastCheck = time.Now()
			continue
		}
		es := streamEntries(res)
		for _, v := range es {
			e, err := parseEntry(v)
			if err != nil {
				s.markLost(fmt.Errorf("%w: %w", ErrEpochLost, err))
				return
			}
			if e.seq != read+1 {
				s.markLost(fmt.Errorf("%w: the tail read frame %d after %d: frames it had not read were trimmed away (it fell behind by more than the retention plus %d frames)",
					ErrEpochLost, e.seq, read, s.opts.TailSlack))
				return
			}
			if !s.ownJSON(e.json) {
				s.markLost(fmt.Errorf("%w: frame %d belongs to another epoch", ErrEpochLost, e.seq))
				return
			}
			read = e.seq
			part = append(part, e)
			if e.last {
				s.deliver(part)
				part = part[:0]
			}
		}
		if time.Since(lastCheck) > 5*time.Second {
			// Busy rings are checked too, now and then.
			if !s.checkEpoch() {
				return
			}
			lastCheck = time.Now()
		}
	}
}

// streamEntries extracts the entries of XREAD's reply [[key, [entry …]]].
func streamEntries(res []any) []any {
	for _, st := range res {
		a, ok := st.([]any)
		if ok && len(a) == 2 {
			es, _ := a[1].([]any)
			return es
		}
	}
	return nil
}

// checkEpoch reads the epoch and head from Redis: an epoch that is missing or
// another, or a head behind this Store's, makes the Store Lost. It also
// measures the stream's memory. A failed read is left to the next XREAD.
func (s *Store) checkEpoch() bool {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ReadTimeout+s.opts.WriteTimeout)
	defer cancel()
	t0 := time.Now()
	pipe := s.tailc.Pipeline()
	meta := pipe.HMGet(ctx, s.k.meta, "epoch", "head")
	mem := pipe.MemoryUsage(ctx, s.k.frames, 0)
	_, _ = pipe.Exec(ctx)
	s.m.roundTrip("check", time.Since(t0))
	vals, err := meta.Result()
	if err != nil || len(vals) != 2 {
		return true
	}
	if n, err := mem.Result(); err == nil {
		s.size.Store(n)
	}
	e, _ := vals[0].(string)
	if e != s.epochHex {
		if e == "" {
			e = "none"
		}
		s.markLost(fmt.Errorf("%w: epoch %s, Redis has %s", ErrEpochLost, s.epochHex, e))
		return false
	}
	if h, err := parseSeq(vals[1]); err == nil {
		if mine := s.bnd.Load().head; h < mine {
			s.retire(strconv.FormatUint(h, 10))
			return false
		}
		s.noteTop(h)
	}
	return true
}

// deliver hands one commit to this Store: first the bounds, latest frames
// and nodes (so a hook that reads the store finds the frames), then the
// hooks in registration order, then the Append waiting for it, then
// Changed's waiters.
func (s *Store) deliver(es []entry) {
	last := es[len(es)-1]
	var p *pendingCommit
	if strings.HasPrefix(last.token, s.instance+"-") {
		s.pmu.Lock()
		p = s.pending[last.token]
		delete(s.pending, last.token)
		s.pmu.Unlock()
		if p != nil && len(p.batches) != len(es) {
			p = nil // not the commit this Append made: never mix samples up
		}
	}
	frames := make([]store.Frame, len(es))
	for i, e := range es {
		f := store.Frame{ID: store.ID{Epoch: s.epoch, Seq: e.seq}, Topic: e.topic, TS: e.ts, JSON: []byte(e.json)}
		if p != nil {
			f.Samples = p.batches[i].Samples
		} else {
			f.Samples = decodeSamples(f.JSON)
		}
		frames[i] = f
	}
	oldest := min(last.oldest, last.seq+1)
	s.mu.Lock()
	prev := s.bnd.Load()
	oldest = max(oldest, prev.oldest) // oldest only grows
	s.bnd.Store(&bounds{head: last.seq, oldest: oldest})
	for _, f := range frames {
		if f.ID.Seq >= oldest {
			lf := f
			lf.Samples = nil // Latest is a read: frames read back carry no samples
			s.latest[f.Topic] = lf
		}
	}
	if last.node != "" {
		s.nodes[last.node] = NodeSeen{Name: last.node, Seq: last.seq, At: time.Now()}
	}
	if oldest > prev.oldest {
		s.forgetTrimmed(oldest)
	}
	s.mu.Unlock()
	s.m.delivered(len(frames), last.committedAtMilli)
	s.noteTop(last.seq)

	s.hookMu.Lock()
	hooks := s.hooks
	s.hookMu.Unlock()
	for _, h := range hooks {
		h(frames)
	}
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	// The Append waiting for this commit returns only now: as with a store
	// of its own, its frames have reached the hooks and Changed is closed.
	if p != nil {
		p.frames = frames
		close(p.done)
	}
}

// decodeSamples reads the samples back from a frame's JSON, for frames
// another instance appended (the hooks get samples with every frame).
func decodeSamples(js []byte) []store.Sample {
	var w struct {
		Samples []store.Sample `json:"samples"`
	}
	if err := json.Unmarshal(js, &w); err != nil {
		return nil
	}
	if w.Samples == nil {
		return []store.Sample{}
	}
	return w.Samples
}

func (s *Store) setTailErr(err error) {
	s.mu.Lock()
	s.tailErr = err
	s.mu.Unlock()
}

func (s *Store) isStopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// releasePending forgets the Appends still waiting when the tail ends (they
// return on stop or lost).
func (s *Store) releasePending() {
	s.pmu.Lock()
	clear(s.pending)
	s.pmu.Unlock()
}
