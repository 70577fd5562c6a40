// Package bolt is the bbolt implementation of store.Store: a bounded,
// durable ring of frames in one bbolt file. Frames are keyed by big-endian
// sequence number so that resuming after a cursor is a B+tree seek (never a
// scan from the start), retention is trimmed in the same transaction as the
// append, and subscribers are told about frames only after they are
// committed, so nothing a client saw can be lost by a crash.
package bolt

import (
	"bytes"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"livedash/config"
	"livedash/dashboard/store"

	"github.com/prometheus/client_golang/prometheus"
	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	bucketMeta   = []byte("meta")
	bucketFrames = []byte("frames")
	keyEpoch     = []byte("epoch")
	keyHead      = []byte("head")
)

// ErrLocked: another process holds the store file.
var ErrLocked = errors.New("bolt store: locked by another process")

// Options configure Open. Zero values mean the documented defaults.
type Options struct {
	Path        string
	MaxFrames   int           // retention by count; default: config store.retention.frames
	MaxAge      time.Duration // retention by age; 0 = none
	LockTimeout time.Duration // default: config store.lock_timeout
	MaxSize     int64         // bbolt Options.MaxSize; 0 = unbounded
	NoSync      bool          // tests and benchmarks only
	// MaxAgeTrim bounds how many frames one append may delete for age, so a
	// wall clock that jumps forward a day drains the ring over several ticks
	// instead of in one long transaction. Default 2000.
	MaxAgeTrim int
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: no metrics registered
	Now        func() time.Time      // wall clock for ts and age; default time.Now
}

// Store is the ring. All methods are safe for concurrent use. Append calls are
// serialised; reads run in bbolt read transactions that are never held while
// the caller does I/O (every byte returned is copied).
type Store struct {
	db    *bbolt.DB
	path  string
	opts  Options
	log   *slog.Logger
	epoch uint64

	appendMu sync.Mutex // serialises Append and the commit hooks
	hooks    []func([]store.Frame)
	buf      []byte   // JSON scratch, guarded by appendMu
	keys     []string // label-key scratch, guarded by appendMu

	// bounds: head = last committed seq (0 if never written); oldest = first
	// retained seq (head+1 when empty). Both only grow.
	head, oldest atomic.Uint64

	mu      sync.Mutex
	latest  map[string]store.Frame
	changed chan struct{} // closed and replaced after each commit
	lastErr error
	closed  bool

	size      atomic.Int64
	m         *metrics
	badLogged atomic.Bool
}

// Open opens or creates the store at opts.Path. A file that cannot be read as
// a livedash store (garbage, corrupt pages, failed consistency check) is moved
// aside as <path>.corrupt-<time> and a new epoch starts, logged at ERROR. A
// file held by another process fails with ErrLocked within LockTimeout; a
// missing permission or read-only filesystem fails with the path and reason.
func Open(opts Options) (*Store, error) {
	def := config.Default().Store
	if opts.MaxFrames <= 0 {
		opts.MaxFrames = def.Retention.Frames
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = def.LockTimeout.D()
	}
	if opts.MaxAgeTrim <= 0 {
		opts.MaxAgeTrim = 2000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{path: opts.Path, opts: opts, log: opts.Logger, changed: make(chan struct{})}
	if err := s.openChecked(); err != nil {
		return nil, err
	}
	if err := s.trimExcess(); err != nil {
		_ = s.db.Close()
		return nil, fmt.Errorf("trim store %s to %d frames: %w", s.path, opts.MaxFrames, err)
	}
	s.mu.Lock()
	s.forgetTrimmed()
	s.mu.Unlock()
	s.m = newMetrics(opts.Registerer, s)
	return s, nil
}

// trimExcess brings a ring that holds more than MaxFrames (retention was
// lowered since the last run) down to it in transactions of bounded size, so
// no append ever has to delete more than its own batch's worth.
func (s *Store) trimExcess() error {
	const chunk = 10000
	for s.Len() > s.opts.MaxFrames {
		oldest := s.oldest.Load()
		n := min(uint64(s.Len()-s.opts.MaxFrames), chunk)
		err := s.db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket(bucketFrames)
			key := make([]byte, 8)
			for seq := oldest; seq < oldest+n; seq++ {
				binary.BigEndian.PutUint64(key, seq)
				if err := b.Delete(key); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		s.oldest.Store(oldest + n)
	}
	return nil
}

// openChecked opens the bbolt file, verifies and loads it, quarantining it
// once if it is not usable.
func (s *Store) openChecked() error {
	err := s.openLoad()
	if err == nil {
		return nil
	}
	if !isCorruption(err) {
		return err
	}
	aside := fmt.Sprintf("%s.corrupt-%s", s.path, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if rerr := os.Rename(s.path, aside); rerr != nil {
		return fmt.Errorf("store %s is corrupt (%w) and could not be moved aside: %w", s.path, err, rerr)
	}
	s.log.Error("store file is corrupt; moved aside, starting a new epoch: frames in it are not served",
		"path", s.path, "moved_to", aside, "err", err)
	return s.openLoad()
}

// openLoad opens and checks the file and loads its epoch, bounds and latest
// frames. A panic or an unreadable record while loading is corruption too.
func (s *Store) openLoad() (err error) {
	db, err := s.openAndCheck()
	if err != nil {
		return err
	}
	s.db = db
	s.latest = map[string]store.Frame{}
	defer func() {
		if r := recover(); r != nil {
			err = corruptError{fmt.Errorf("panic while loading: %v", r)}
		}
		if err != nil {
			_ = db.Close()
			s.db = nil
		}
	}()
	return s.load()
}

type corruptError struct{ err error }

func (e corruptError) Error() string { return "corrupt store: " + e.err.Error() }
func (e corruptError) Unwrap() error { return e.err }

func isCorruption(err error) bool {
	var c corruptError
	return errors.As(err, &c)
}

func (s *Store) openAndCheck() (db *bbolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, corruptError{fmt.Errorf("panic while opening: %v", r)}
		}
	}()
	db, err = bbolt.Open(s.path, 0o600, &bbolt.Options{
		Timeout:      s.opts.LockTimeout,
		NoSync:       s.opts.NoSync,
		MaxSize:      int(s.opts.MaxSize),
		FreelistType: bbolt.FreelistMapType,
	})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("open store %s: %w%s", s.path, ErrLocked, lockHolder(s.path))
		case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS), errors.Is(err, fs.ErrNotExist),
			errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EISDIR):
			return nil, fmt.Errorf("open store %s: %w", s.path, err)
		}
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Op != "read" {
			return nil, fmt.Errorf("open store %s: %w", s.path, err)
		}
		return nil, corruptError{err}
	}
	var problems []error
	if verr := db.View(func(tx *bbolt.Tx) error {
		// Read the channel to its end: Check's goroutine walks pages until
		// it has sent everything, and must be done before the file closes.
		for cerr := range tx.Check() {
			if len(problems) < 10 {
				problems = append(problems, cerr)
			}
		}
		return nil
	}); verr != nil {
		problems = append(problems, verr)
	}
	if len(problems) > 0 {
		_ = db.Close()
		return nil, corruptError{errors.Join(problems...)}
	}
	return db, nil
}

// load reads or creates the epoch and the bounds, and fills the latest-frame
// cache from the newest frames.
func (s *Store) load() error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		frames, err := tx.CreateBucketIfNotExists(bucketFrames)
		if err != nil {
			return err
		}
		frames.FillPercent = 1
		c := frames.Cursor()
		firstK, _ := c.First()
		lastK, _ := c.Last()
		ev := meta.Get(keyEpoch)
		if len(ev) != 8 || binary.BigEndian.Uint64(ev) == 0 {
			if firstK != nil {
				// Frames without an epoch cannot be resumed by anyone: drop them.
				s.log.Error("store has frames but no epoch; clearing it and starting a new epoch", "path", s.path)
				if err := tx.DeleteBucket(bucketFrames); err != nil {
					return err
				}
				if _, err := tx.CreateBucket(bucketFrames); err != nil {
					return err
				}
				firstK, lastK = nil, nil
			}
			s.epoch = newEpoch()
			s.log.Warn("new store epoch", "path", s.path, "epoch", fmt.Sprintf("%016x", s.epoch))
			if err := meta.Put(keyEpoch, binary.BigEndian.AppendUint64(nil, s.epoch)); err != nil {
				return err
			}
			if err := meta.Put(keyHead, make([]byte, 8)); err != nil {
				return err
			}
		} else {
			s.epoch = binary.BigEndian.Uint64(ev)
		}
		var head uint64
		if hv := meta.Get(keyHead); len(hv) == 8 {
			head = binary.BigEndian.Uint64(hv)
		}
		if lastK != nil {
			if len(lastK) != 8 || len(firstK) != 8 {
				return corruptError{errors.New("frames bucket has a key that is not a sequence number")}
			}
			head = max(head, binary.BigEndian.Uint64(lastK))
			s.oldest.Store(binary.BigEndian.Uint64(firstK))
		} else {
			s.oldest.Store(head + 1)
		}
		s.head.Store(head)
		s.size.Store(tx.Size())
		// Latest frame per topic: walk back over a bounded number of frames.
		for k, v := c.Last(); k != nil && len(s.latest) < 1024; k, v = c.Prev() {
			if int(s.head.Load()-binary.BigEndian.Uint64(k)) > 20000 {
				break
			}
			ts, topic, js, err := parseRecord(v)
			if err != nil {
				return corruptError{fmt.Errorf("frame %d: %w", binary.BigEndian.Uint64(k), err)}
			}
			if _, ok := s.latest[string(topic)]; !ok {
				s.latest[string(topic)] = store.Frame{ID: store.ID{Epoch: s.epoch, Seq: binary.BigEndian.Uint64(k)}, Topic: string(topic), TS: ts, JSON: bytes.Clone(js)}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load store %s: %w", s.path, err)
	}
	s.log.Info("store opened", "path", s.path, "epoch", fmt.Sprintf("%016x", s.epoch),
		"head", s.head.Load(), "oldest", s.oldest.Load(), "frames", s.Len())
	return nil
}

func newEpoch() uint64 {
	var b [8]byte
	for {
		if _, err := crand.Read(b[:]); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		if e := binary.BigEndian.Uint64(b[:]); e != 0 {
			return e
		}
	}
}

// Close closes the file. Appends after Close return ErrClosed.
func (s *Store) Close() error {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.m != nil {
		s.m.unregister()
	}
	return s.db.Close()
}

// Path is the store file's path.
func (s *Store) Path() string { return s.path }

// Epoch is the store's epoch.
func (s *Store) Epoch() uint64 { return s.epoch }

// Head is the ID of the newest committed frame (Seq 0 before the first).
func (s *Store) Head() store.ID { return store.ID{Epoch: s.epoch, Seq: s.head.Load()} }

// Oldest is the ID of the oldest retained frame, or Head when the ring is empty.
func (s *Store) Oldest() store.ID {
	o, h := s.oldest.Load(), s.head.Load()
	if o > h {
		return store.ID{Epoch: s.epoch, Seq: h}
	}
	return store.ID{Epoch: s.epoch, Seq: o}
}

// Len is the number of retained frames. Seqs are contiguous from oldest to
// head because the ring is only ever trimmed from the front.
func (s *Store) Len() int {
	o, h := s.oldest.Load(), s.head.Load()
	if o > h {
		return 0
	}
	return int(h - o + 1)
}

// Size is the file size in bytes as of the last commit.
func (s *Store) Size() int64 { return s.size.Load() }

// Err is the error of the last append, nil if it succeeded (readiness).
func (s *Store) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	return s.lastErr
}

// OnCommit registers fn to be called after every successful commit with the
// committed frames, in commit order. fn runs with the append lock held: it
// must not block and must not call Append. Register hooks before the first
// Append.
func (s *Store) OnCommit(fn func([]store.Frame)) {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	s.hooks = append(s.hooks, fn)
}

// Changed returns a channel that is closed after the next commit, once its
// commit hooks have run. Long polls park on it; waking them costs one close,
// whatever their number.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Latest returns the newest retained frame of topic, without Samples, from
// a cache that Append keeps. Open fills it from at most the newest 20,000
// frames and 1,024 topics, so that start-up stays bounded: after a restart a
// topic quiet for longer than that has no latest frame until it reports.
func (s *Store) Latest(topic string) (store.Frame, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.latest[topic]
	return f, ok
}

// Topics returns the topics that have a frame in the latest cache.
func (s *Store) Topics() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.latest))
	for t := range s.latest {
		out = append(out, t)
	}
	return out
}

// Append commits batches as consecutive frames in one transaction, trims the
// ring to its retention in that same transaction, and then — only after the
// commit succeeded — updates the bounds and calls the commit hooks. On error
// nothing of the call is stored, the bounds are unchanged, and the error is
// counted; the store stays usable (a full disk recovers when space returns).
func (s *Store) Append(batches []store.Batch) ([]store.Frame, error) {
	if len(batches) == 0 {
		return nil, nil
	}
	for _, b := range batches {
		if b.Topic == "" || len(b.Topic) > store.MaxTopicLen {
			return nil, fmt.Errorf("append topic %q: %w", b.Topic, store.ErrTopic)
		}
	}
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	if s.db == nil || s.isClosed() {
		return nil, store.ErrClosed
	}
	start := time.Now()
	head := s.head.Load()
	oldest := s.oldest.Load()
	frames := make([]store.Frame, len(batches))
	var skipped int
	// Encode every frame into the reusable scratch buffer first, then lay the
	// records out in one exactly-sized allocation: bbolt keeps a reference to
	// each value until the commit, so values must not share reusable memory,
	// and the frames' JSON can alias the records (nothing writes to them).
	type span struct{ start, end int }
	spans := make([]span, len(batches))
	tss := make([]int64, len(batches))
	s.buf = s.buf[:0]
	total := 0
	for i, bt := range batches {
		tss[i] = bt.Time.UnixMilli()
		if bt.Time.IsZero() {
			tss[i] = s.opts.Now().UnixMilli()
		}
		start := len(s.buf)
		var sk int
		s.buf, sk = store.AppendFrameJSON(s.buf, &s.keys, store.ID{Epoch: s.epoch, Seq: head + uint64(i) + 1}, bt.Topic, tss[i], bt.Samples)
		skipped += sk
		spans[i] = span{start, len(s.buf)}
		total += recordOverhead + len(bt.Topic) + len(s.buf) - start
	}
	recs := make([]byte, 0, total)
	var newOldest uint64
	var size int64
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketFrames)
		b.FillPercent = 1
		key := make([]byte, 8) // Put copies keys, not values
		for i, bt := range batches {
			seq := head + uint64(i) + 1
			start := len(recs)
			recs = appendRecord(recs, tss[i], bt.Topic, s.buf[spans[i].start:spans[i].end])
			binary.BigEndian.PutUint64(key, seq)
			if err := b.Put(key, recs[start:len(recs):len(recs)]); err != nil {
				return err
			}
			js := recs[start+recordOverhead+len(bt.Topic) : len(recs) : len(recs)]
			frames[i] = store.Frame{ID: store.ID{Epoch: s.epoch, Seq: seq}, Topic: bt.Topic, TS: tss[i], JSON: js, Samples: bt.Samples}
		}
		newHead := head + uint64(len(batches))
		if err := tx.Bucket(bucketMeta).Put(keyHead, binary.BigEndian.AppendUint64(nil, newHead)); err != nil {
			return err
		}
		var err error
		newOldest, err = s.trim(b, oldest, newHead)
		size = tx.Size()
		return err
	})
	if cap(s.buf) > 8<<20 {
		s.buf = nil // one huge batch must not pin its scratch memory forever
	}
	s.m.observeAppend(time.Since(start), err, len(frames), skipped)
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	if err != nil {
		s.log.Error("store append failed; frames not stored", "path", s.path, "frames", len(batches), "err", err)
		return nil, fmt.Errorf("append to store %s: %w", s.path, err)
	}
	s.m.trimmed(newOldest - oldest)
	s.oldest.Store(newOldest)
	s.head.Store(head + uint64(len(batches)))
	s.size.Store(size)
	s.mu.Lock()
	for _, f := range frames {
		f.Samples = nil // Latest is a read: frames read back carry no samples
		s.latest[f.Topic] = f
	}
	if newOldest > oldest {
		s.forgetTrimmed()
	}
	s.mu.Unlock()
	for _, h := range s.hooks {
		h(frames)
	}
	// Wake waiters only after the hooks ran, so a waiter that reads state a
	// hook maintains (the hub's window, the API's index) finds the frames.
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return frames, nil
}

// forgetTrimmed drops from the latest cache the topics whose newest frame
// retention has trimmed: Latest answers with retained frames only, as it
// does after a restart, when the cache is loaded from the ring. Called with
// mu held.
func (s *Store) forgetTrimmed() {
	oldest := s.oldest.Load()
	for topic, f := range s.latest {
		if f.ID.Seq < oldest {
			delete(s.latest, topic)
		}
	}
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// trim deletes from the front: everything over MaxFrames, then up to
// MaxAgeTrim frames older than MaxAge. It returns the new oldest seq.
func (s *Store) trim(b *bbolt.Bucket, oldest, head uint64) (uint64, error) {
	// Keys to delete are collected first and deleted afterwards: deleting
	// through a cursor can make its Next skip a key, and re-seeking after
	// each delete walks the emptied leaves again and again.
	var doomed []uint64
	c := b.Cursor()
	over := uint64(0)
	if head >= oldest && head-oldest+1 > uint64(s.opts.MaxFrames) {
		over = head - oldest + 1 - uint64(s.opts.MaxFrames)
	}
	var cutoff int64
	if s.opts.MaxAge > 0 {
		cutoff = s.opts.Now().Add(-s.opts.MaxAge).UnixMilli()
	}
	aged := 0
	for k, v := c.First(); k != nil; k, v = c.Next() {
		seq := binary.BigEndian.Uint64(k)
		if uint64(len(doomed)) < over {
			doomed = append(doomed, seq)
			continue
		}
		if s.opts.MaxAge <= 0 || aged >= s.opts.MaxAgeTrim {
			break
		}
		if ts, _, _, err := parseRecord(v); err == nil && ts >= cutoff {
			break
		}
		doomed = append(doomed, seq)
		aged++
	}
	key := make([]byte, 8)
	for _, seq := range doomed {
		binary.BigEndian.PutUint64(key, seq)
		if err := b.Delete(key); err != nil {
			return oldest, err
		}
		oldest = seq + 1
	}
	return oldest, nil
}

// CheckFile runs bbolt's consistency check on a closed store file and
// returns every fault it finds (nil: consistent). Tests call it on cleanup;
// it opens the file read-only and does not change it.
func CheckFile(path string) []error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return []error{err}
	}
	defer db.Close()
	var errs []error
	_ = db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return nil
	})
	return errs
}
