package api

import (
	"net/http"
	"slices"
	"strings"

	"livedash/config"
	"livedash/dashboard/apierr"
)

// maxListed bounds the names an unknown_topic or unknown_series message
// lists as known.
const maxListed = 40

// KnownTopic reports whether a topic is known: configured (Options.Topics:
// the enabled collectors' and the configured panels'), held by the store,
// or seen since start-up. A filter naming anything else is a mistake the
// API reports (unknown_topic) instead of answering with nothing. Safe for
// concurrent use.
func (a *API) KnownTopic(topic string) bool {
	if contains(a.opts.Topics, topic) {
		return true
	}
	a.mu.RLock()
	_, seen := a.idx.topics[topic]
	a.mu.RUnlock()
	if seen {
		return true
	}
	_, stored := a.store.Latest(topic)
	return stored
}

// UnknownTopics returns the topics of list that are not known, in order.
func (a *API) UnknownTopics(list []string) []string {
	var out []string
	for _, t := range list {
		if !a.KnownTopic(t) {
			out = append(out, t)
		}
	}
	return out
}

// knownTopics lists the known topics, sorted.
func (a *API) knownTopics() []string {
	set := slices.Clone(a.opts.Topics)
	a.mu.RLock()
	set = append(set, a.idx.topicNames...)
	a.mu.RUnlock()
	set = append(set, a.store.Topics()...)
	slices.Sort(set)
	return slices.Compact(set)
}

// checkTopics is the 400 for a topics= filter naming unknown topics, or nil.
func (a *API) checkTopics(list []string) *apierr.Error {
	unknown := a.UnknownTopics(list)
	if len(unknown) == 0 {
		return nil
	}
	quoted := make([]string, len(unknown))
	for i, t := range unknown {
		quoted[i] = quote(t)
	}
	what := "topic " + quoted[0] + " is"
	if len(unknown) > 1 {
		what = "topics " + strings.Join(quoted, ", ") + " are"
	}
	return apierr.New(http.StatusBadRequest, "unknown_topic",
		"parameter topics: %s unknown: no enabled collector or configured panel has it, and no frame of it was seen; known topics: %s",
		what, listNames(a.knownTopics()))
}

func listNames(names []string) string {
	if len(names) == 0 {
		return "none yet"
	}
	if len(names) > maxListed {
		return strings.Join(names[:maxListed], ", ") + ", …"
	}
	return strings.Join(names, ", ")
}

// checkSelector is the 400 for a series= selector that matches no series
// the API knows of (seen since start-up, in the topics asked for), or nil.
// A selector naming a series of a configured panel or threshold is never
// refused: it may simply not have reported yet. Nor is any when the index
// dropped series (it holds Options.MaxSeries): then it cannot tell.
func (a *API) checkSelector(sel Selector, topics []string) *apierr.Error {
	if sel.Name == "" && len(sel.Matchers) == 0 {
		return nil
	}
	if sel.Name != "" && contains(a.opts.Series, sel.Name) {
		return nil
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.idx.dropped > 0 {
		return nil
	}
	var names []string
	sameName := map[string][]string{} // label → values seen on series of sel.Name
	for _, tn := range a.idx.topicNames {
		if topics != nil && !contains(topics, tn) {
			continue
		}
		for _, s := range a.idx.topics[tn].series {
			if sel.Match(s.name, s.labels) {
				return nil
			}
			if !contains(names, s.name) {
				names = append(names, s.name)
			}
			if s.name == sel.Name {
				for k, v := range s.labels {
					if !contains(sameName[k], v) {
						sameName[k] = append(sameName[k], v)
					}
				}
			}
		}
	}
	where := ""
	if topics != nil {
		where = " in topics " + strings.Join(topics, ", ")
	}
	if sel.Name != "" && !contains(names, sel.Name) {
		msg := "parameter series: no series named " + quote(sel.Name) + " was seen" + where
		if near := nearest(sel.Name, names); near != "" {
			msg += "; did you mean " + near + "?"
		}
		return apierr.New(http.StatusBadRequest, "unknown_series", "%s", msg)
	}
	var hints []string
	for _, m := range sel.Matchers {
		if vals, ok := sameName[m.Label]; ok && sel.Name != "" {
			slices.Sort(vals)
			hints = append(hints, m.Label+" takes "+listNames(vals))
		}
	}
	msg := "parameter series: no series seen" + where + " matches the selector"
	if len(hints) > 0 {
		msg += " (" + strings.Join(hints, "; ") + ")"
	}
	return apierr.New(http.StatusBadRequest, "unknown_series", "%s", msg)
}

// nearest returns the name of names closest to s by edit distance, when
// it is close enough to be a typo, else "".
func nearest(s string, names []string) string {
	best, bestD := "", len(s)/3+1
	for _, n := range names {
		if d := config.EditDistance(s, n); d < bestD || (d == bestD && n < best && best != "") {
			best, bestD = n, d
		}
	}
	return best
}
