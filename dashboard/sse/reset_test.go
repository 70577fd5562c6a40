package sse

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

type resetMsg struct {
	Reason    string `json:"reason"`
	Requested string `json:"requested"`
	Oldest    string `json:"oldest"`
	Head      string `json:"head"`
}

// TestResetReasons covers every impossible cursor (malformed, another
// epoch, expired, future, too far): every reason is said in-band,
// then the stream continues live from the stated head without a gap.
func TestResetReasons(t *testing.T) {
	cfg := testConfig()
	cfg.ReplayMaxFrames = 20
	cfg.ReplayMaxBytes = 4000
	e := newEnv(t, cfg, func(o *bolt.Options) { o.MaxFrames = 100 })
	fs := e.appendN(t, "cpu", 150, 10) // seqs 1..150, 51..150 retained
	big := e.appendN(t, "big", 3, 3000)
	e.appendN(t, "cpu", 1, 10)
	epoch := e.store.Epoch()
	head := e.store.Head().Seq
	other := fmt.Sprintf("%016x", epoch^1)

	for _, tc := range []struct {
		name, header, query, reason string
	}{
		{"too long", strings.Repeat("1", 65), "", "malformed"},
		{"minus one", "-1", "", "malformed"},
		{"abc", "abc", "", "malformed"},
		{"overflow", fmt.Sprintf("%016x-18446744073709551616", epoch), "", "malformed"},
		{"invalid utf8", "\xff\xfe\xfd", "", "malformed"},
		{"nul via query", "", "lastEventId=" + url.QueryEscape("a\x00b\r\nc"), "malformed"},
		{"unknown epoch", other + "-5", "", "unknown_epoch"},
		{"expired", idStr(epoch, 10), "", "expired"},
		{"future", "FUTURE", "", "future"},
		{"too far (frames)", idStr(epoch, head-30), "", "too_far"},
		{"too far (bytes, filtered)", idStr(epoch, fs[len(fs)-1].ID.Seq), "topics=big", "too_far"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.metric(t, "resets", tc.reason)
			if tc.header == "FUTURE" {
				tc.header = idStr(epoch, e.store.Head().Seq+5)
			}
			c := dial(t, e.url, tc.query, tc.header)
			if ev := c.next(t, 2*time.Second); ev.Type != "hello" {
				t.Fatalf("first event %s", ev.Type)
			}
			ev := c.next(t, 2*time.Second)
			if ev.Type != "reset" {
				t.Fatalf("got %s event, want reset", ev.Type)
			}
			var r resetMsg
			if err := json.Unmarshal([]byte(ev.Data), &r); err != nil {
				t.Fatal(err)
			}
			h := e.store.Head().String()
			if r.Reason != tc.reason || r.Head != h || r.Oldest != e.store.Oldest().String() || ev.LastEventID != h {
				t.Fatalf("reset %+v id %q; want reason %s head %s", r, ev.LastEventID, tc.reason, h)
			}
			if len(r.Requested) > store.MaxIDLen || !utf8.ValidString(r.Requested) || strings.ContainsAny(r.Requested, "\x00\r\n") {
				t.Fatalf("requested echoed unsafely: %q", r.Requested)
			}
			if got := e.metric(t, "resets", tc.reason); got != before+1 {
				t.Fatalf("resets{%s} = %v, want %v", tc.reason, got, before+1)
			}
			// Continues live right after the stated head.
			topic := "cpu"
			if strings.Contains(tc.query, "topics=big") {
				topic = "big"
			}
			f := e.appendN(t, topic, 1, 10)[0]
			if ev := c.next(t, 2*time.Second); ev.Type != "frame" || ev.LastEventID != f.ID.String() {
				t.Fatalf("after reset got %s %s, want frame %s", ev.Type, ev.LastEventID, f.ID)
			}
		})
	}
	_ = big
}

// TestMalformedHeaderRaw sends header bytes no Go client would: a Last-Event-ID
// with obs-text and an over-long value; the server answers 200 + reset.
func TestMalformedHeaderRaw(t *testing.T) {
	e := newEnv(t, testConfig())
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	id := "\x80\xc3(" + strings.Repeat("9", 200)
	fmt.Fprintf(conn, "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nLast-Event-ID: %s\r\n\r\n", id)
	_ = conn.SetReadDeadline(time.Now().Add(minWait))
	br := bufio.NewReader(conn)
	status, _ := br.ReadString('\n')
	if !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("status line %q", status)
	}
	var sawReset bool
	for !sawReset {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: {\"reason\":\"malformed\"") {
			sawReset = true
			var r struct{ Requested string }
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &r); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			// Count only the echoed value: the epoch's hex digits may hold 9s.
			if strings.Contains(line, "\x80") || len(r.Requested) > store.MaxIDLen+3 || strings.Count(r.Requested, "9") > store.MaxIDLen {
				t.Fatalf("raw id echoed: %q", line)
			}
		}
	}
}
