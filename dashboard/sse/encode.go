package sse

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

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

// appendEvent appends the frame event of id with data js. js is produced by
// the store's encoder, which escapes every control character, so it is one
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
