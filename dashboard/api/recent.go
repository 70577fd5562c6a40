package api

import (
	"sort"

	"livedash/dashboard/store"
)

// The recent window: the last frames handed to OnCommit, kept so that polls
// near the head — above all the thousands of long polls one commit wakes —
// are answered from memory, without a store read transaction each. Frames
// share their JSON with the store's commit (immutable bytes). Bounded by
// recentMaxFrames and recentMaxBytes; a cursor older than the window is read
// from the store.
const (
	recentMaxFrames = 4096
	recentMaxBytes  = 8 << 20
)

// addRecent appends committed frames and wakes parked long polls. Called by
// OnCommit, in commit order.
func (a *API) addRecent(frames []store.Frame) {
	a.recentMu.Lock()
	for i := range frames {
		f := &frames[i]
		a.recent = append(a.recent, store.Frame{ID: f.ID, Topic: f.Topic, TS: f.TS, JSON: f.JSON})
		a.recentBytes += len(f.JSON)
	}
	drop := 0
	for len(a.recent)-drop > 1 && (len(a.recent)-drop > recentMaxFrames || a.recentBytes > recentMaxBytes) {
		a.recentBytes -= len(a.recent[drop].JSON)
		drop++
	}
	if drop > 0 {
		clear(a.recent[:drop])
		a.recent = a.recent[drop:]
	}
	if a.closed {
		a.recentMu.Unlock()
		return // the wake channel stays closed: polls answer at once
	}
	a.recentGen++
	wake := a.wake
	a.wake = make(chan struct{})
	a.recentMu.Unlock()
	close(wake)
}

// changed returns a channel closed after the next commit has been added to
// the recent window (and is therefore also readable from the store), or by
// Close; closed reports whether Close was called, and gen numbers the
// window's contents (it changes with every commit). One channel carries
// both wake-ups because every channel shared by the parked polls' selects
// is a lock they all take when one commit wakes them.
func (a *API) changed() (ch <-chan struct{}, closed bool, gen uint64) {
	a.recentMu.RLock()
	defer a.recentMu.RUnlock()
	return a.wake, a.closed, a.recentGen
}

// readRecent is store.Store.After over the recent window; ok is false when
// the window cannot answer for cursor (other epoch, older than the window or
// than the store's oldest, newer than the window).
func (a *API) readRecent(cursor store.ID, match func(string) bool, lim store.Limits) (r store.Result, ok bool) {
	a.recentMu.RLock()
	defer a.recentMu.RUnlock()
	n := len(a.recent)
	if n == 0 || cursor.Epoch != a.recent[0].ID.Epoch {
		return r, false
	}
	first, last := a.recent[0].ID.Seq, a.recent[n-1].ID.Seq
	if cursor.Seq+1 < first || cursor.Seq > last {
		return r, false
	}
	oldest := a.store.Oldest()
	if cursor.Seq+1 < oldest.Seq {
		return r, false // trimmed from the store: After reports expired
	}
	r.Head, r.Oldest = a.recent[n-1].ID, oldest
	if r.Oldest.Seq > r.Head.Seq {
		r.Oldest = r.Head
	}
	i := sort.Search(n, func(i int) bool { return a.recent[i].ID.Seq > cursor.Seq })
	next, visited, bytesOut := cursor.Seq, 0, 0
	for ; i < n; i++ {
		f := &a.recent[i]
		if (lim.Scan > 0 && visited >= lim.Scan) || (lim.Frames > 0 && len(r.Frames) >= lim.Frames) {
			r.More = true
			break
		}
		if match == nil || match(f.Topic) {
			if lim.Bytes > 0 && len(r.Frames) > 0 && bytesOut+len(f.JSON) > lim.Bytes {
				r.More = true
				break
			}
			bytesOut += len(f.JSON)
			r.Frames = append(r.Frames, *f)
		}
		next = f.ID.Seq
		visited++
	}
	if !r.More {
		next = last
	}
	r.Next = store.ID{Epoch: cursor.Epoch, Seq: next}
	return r, true
}
