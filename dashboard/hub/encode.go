package hub

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	sse "github.com/tmaxmax/go-sse"

	"livedash/dashboard/store"
)

// Frame events are on the hot path (encoded once per frame, then shared by
// every stream), so they are written by hand; the test checks them against
// go-sse's encoder and parser. Everything else (hello, reset, retry hints,
// heartbeats) is rare and goes through sse.Message.

const (
	evPrefix = "id: "
	evMiddle = "\nevent: frame\ndata: "
	evSuffix = "\n\n"
)

// eventSize is an upper bound of the encoded size of f (for one allocation per node).
func eventSize(f *store.Frame) int {
	return len(evPrefix) + 16 + 1 + 20 + len(evMiddle) + len(f.JSON) + len(evSuffix)
}

// appendFrameEvent appends f as one SSE event.
func appendFrameEvent(b []byte, f *store.Frame) []byte { return appendEvent(b, f.ID, f.JSON) }

// appendEvent appends the frame event of id with data js. js is produced by
// the ring's encoder, which escapes every control character, so it is one
// line; if it ever is not, go-sse splits it into several data: lines, which
// clients join back with LF. It allocates nothing on the common path, so
// replay can encode straight from a read transaction's view.
func appendEvent(b []byte, id store.ID, js []byte) []byte {
	if bytes.IndexByte(js, '\n') >= 0 || bytes.IndexByte(js, '\r') >= 0 { // SIMD scans
		m := &sse.Message{ID: sse.ID(id.String()), Type: sse.Type("frame")}
		m.AppendData(string(js))
		var buf bytes.Buffer
		_, _ = m.WriteTo(&buf)
		return append(b, buf.Bytes()...)
	}
	b = append(b, evPrefix...)
	b = id.AppendTo(b)
	b = append(b, evMiddle...)
	b = append(b, js...)
	return append(b, evSuffix...)
}

var (
	typeHello = sse.Type("hello")
	typeReset = sse.Type("reset")
)

type helloData struct {
	Epoch      string `json:"epoch"`
	Head       string `json:"head"`
	Oldest     string `json:"oldest"`
	ServerTime int64  `json:"server_time"` // Unix ms
	RetryMS    int64  `json:"retry_ms"`
}

type resetData struct {
	Reason    store.Reason `json:"reason"`
	Requested string       `json:"requested"`
	Oldest    string       `json:"oldest"`
	Head      string       `json:"head"`
}

// appendMessage appends the SSE encoding of an event whose data is v as JSON.
// id may be empty (no id: field).
func appendMessage(b []byte, typ sse.EventType, id string, retry time.Duration, v any) []byte {
	js, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are passed
	}
	m := &sse.Message{Type: typ, Retry: retry}
	if id != "" {
		m.ID = sse.ID(id)
	}
	m.AppendData(string(js))
	return appendMsg(b, m)
}

func appendMsg(b []byte, m *sse.Message) []byte {
	buf := bytes.NewBuffer(b)
	_, _ = m.WriteTo(buf) // a bytes.Buffer does not fail
	return buf.Bytes()
}

// appendRetry appends a retry: hint as an event of its own. With no data
// field the client dispatches nothing; it only sets its reconnection time.
func appendRetry(b []byte, d time.Duration) []byte {
	return appendMsg(b, &sse.Message{Retry: max(d, time.Millisecond)})
}

// appendComment appends a comment line, which every client ignores.
func appendComment(b []byte, text string) []byte {
	m := &sse.Message{}
	m.AppendComment(text)
	return appendMsg(b, m)
}

// appendHeartbeat appends ": hb <id> <unix_ms>".
func appendHeartbeat(b []byte, id string, now time.Time) []byte {
	return appendComment(b, "hb "+id+" "+strconv.FormatInt(now.UnixMilli(), 10))
}

// quoteRequested makes a client-sent Last-Event-ID safe to send back in a
// reset event: invalid UTF-8 is replaced, control characters are dropped, and
// it is cut to store.MaxIDLen bytes; encoding/json then escapes what is left.
// It is never logged (FAULTS row 1).
func quoteRequested(s string) string {
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
