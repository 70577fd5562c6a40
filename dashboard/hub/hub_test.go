package hub

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"go.uber.org/goleak"

	"livedash/dashboard/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseTopics(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string // nil: all topics
	}{
		{nil, nil},
		{[]string{""}, nil},
		{[]string{" , ,"}, nil},
		{[]string{"cpu,memory"}, []string{"cpu", "memory"}},
		{[]string{"cpu", " disk "}, []string{"cpu", "disk"}},
		{[]string{strings.Repeat("x", 300)}, []string{}}, // filtered, matches nothing
	} {
		got := ParseTopics(tc.in)
		if (got == nil) != (tc.want == nil) || len(got) != len(tc.want) {
			t.Errorf("ParseTopics(%q) = %v, want %v", tc.in, got, tc.want)
			continue
		}
		for _, w := range tc.want {
			if _, ok := got[w]; !ok {
				t.Errorf("ParseTopics(%q) lacks %q", tc.in, w)
			}
		}
	}
}

func TestQuoteRequested(t *testing.T) {
	for _, in := range []string{"", "abc", strings.Repeat("é", 100), "a\x00b\r\nc", "\xff\xfe", "x\u2028y"} {
		got := QuoteRequested(in)
		if len(got) > store.MaxIDLen || !utf8.ValidString(got) || strings.ContainsAny(got, "\x00\r\n\u2028") {
			t.Errorf("QuoteRequested(%q) = %q", in, got)
		}
	}
}

func FuzzQuoteRequested(f *testing.F) {
	f.Add("9f2c41d07a3be511-1042")
	f.Add("a\x00\r\n\xff")
	f.Fuzz(func(t *testing.T, s string) {
		got := QuoteRequested(s)
		if len(got) > store.MaxIDLen || !utf8.ValidString(got) || strings.ContainsAny(got, "\x00\r\n") {
			t.Fatalf("QuoteRequested(%q) = %q", s, got)
		}
		js, _ := json.Marshal(Reset{Requested: got})
		if bytes.ContainsAny(js, "\r\n") {
			t.Fatalf("reset data has a newline: %q", js)
		}
	})
}

// TestTopicKey: the canonical topic key is the same for the same set in any
// order and differs for any two different sets, including ones a plain
// concatenation would confuse; no filter is not the empty filter.
func TestTopicKey(t *testing.T) {
	set := func(ts ...string) map[string]struct{} {
		m := map[string]struct{}{}
		for _, t := range ts {
			m[t] = struct{}{}
		}
		return m
	}
	sets := []map[string]struct{}{
		nil, set(), set(""), set("ab"), set("a", "b"), set("a", "b", ""), set("a\x01b"), set("a", "\x01b"),
		set("cpu"), set("cpu", "mem"), set("mem"), set(strings.Repeat("x", 200)), set(strings.Repeat("x", 199), "x"),
	}
	keys := map[replayKey]int{}
	for i, s := range sets {
		k := newReplayKey(0, 1, 2, s)
		if j, dup := keys[k]; dup {
			t.Fatalf("sets %q and %q share a key", sets[j], s)
		}
		keys[k] = i
	}
	if newReplayKey(0, 1, 2, set("mem", "cpu", "disk")) != newReplayKey(0, 1, 2, set("disk", "cpu", "mem")) {
		t.Fatal("the same set gave two keys")
	}
	if newReplayKey(0, 1, 2, nil) == newReplayKey(0, 2, 2, nil) || newReplayKey(0, 1, 2, nil) == newReplayKey(0, 1, 3, nil) {
		t.Fatal("cursor or head not in the key")
	}
}

// TestReplayCacheBounded: the cache keeps at most replayCacheSize entries;
// an entry evicted while being read still completes for its holders, and a
// failed one is claimed afresh.
func TestReplayCacheBounded(t *testing.T) {
	var c replayCache
	first, build := c.claim(replayKey{from: 0, all: true})
	if !build {
		t.Fatal("empty cache: not a build")
	}
	for i := range 3 * replayCacheSize {
		if _, build := c.claim(replayKey{from: uint64(i + 1), all: true}); !build {
			t.Fatalf("new key %d: not a build", i+1)
		}
	}
	n := 0
	for _, e := range c.entries {
		if e != nil {
			n++
		}
	}
	if n != replayCacheSize {
		t.Fatalf("%d entries", n)
	}
	first.b = []byte("x")
	c.done(first) // evicted, still usable by whoever holds it
	<-first.ready
	if !first.ok {
		t.Fatal("evicted entry not ok")
	}
	k := replayKey{from: 3 * replayCacheSize, all: true}
	e, build := c.claim(k)
	if build {
		t.Fatal("recent key not cached")
	}
	c.fail(e)
	if _, build := c.claim(k); !build {
		t.Fatal("failed entry served again")
	}
}

// FuzzParseTopics: any topics parameter gives at most 256 items, none empty
// or padded, none longer than a topic can be; nil (every topic) only when
// no item was given.
func FuzzParseTopics(f *testing.F) {
	f.Add("cpu,memory", "")
	f.Add(" , ,", "disk")
	f.Add(strings.Repeat("a,", 300), "")
	f.Add("\x00,\xff,é", strings.Repeat("x", 300))
	f.Fuzz(func(t *testing.T, a, b string) {
		got := ParseTopics([]string{a, b})
		if len(got) > maxTopics {
			t.Fatalf("%d topics", len(got))
		}
		for k := range got {
			if k == "" || k != strings.TrimSpace(k) || len(k) > store.MaxTopicLen || strings.Contains(k, ",") {
				t.Fatalf("topic %q", k)
			}
		}
		if got == nil {
			for _, item := range strings.Split(a+","+b, ",") {
				if strings.TrimSpace(item) != "" {
					t.Fatalf("no filter from %q %q", a, b)
				}
			}
		}
	})
}
