package ws

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"time"

	"livedash/dashboard/hub"
	"livedash/dashboard/store"
)

// Server → client: a text message holds one or more events, separated by
// "\n", each one JSON object:
//
//	{"event":"hello","data":{"epoch","head","oldest","server_time","retry_ms"}}
//	  (and "unknown_topics":[…] when its topics name some that are not known)
//	{"event":"reset","data":{"reason","requested","oldest","head"}}
//	{"event":"frame","data":{"id":"<epoch>-<seq>","topic",…}}
//	{"event":"hb","data":{"head":"<id>","server_time":<unix ms>}}
//
// Every event is encoded with a trailing "\n"; the last one of a message is
// dropped when it is sent, so a message is events joined by "\n".
//
// A client's cursor: the id of the last frame, or the head of a reset, or —
// when it subscribed without a cursor — the head of the hello.

const (
	framePrefix = `{"event":"frame","data":`
	eventSuffix = "}\n"
)

// appendFrameEvent is the frame encoding shared by every subscriber of the
// hub (hub.EncodeFunc). The stored JSON is compact and escapes every control
// character, so it never holds a newline; if it ever does (whitespace
// between tokens), it is compacted so that "\n" still separates events. It
// allocates nothing on the common path.
func appendFrameEvent(b []byte, _ store.ID, js []byte) []byte {
	b = append(b, framePrefix...)
	if bytes.IndexByte(js, '\n') >= 0 || bytes.IndexByte(js, '\r') >= 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, js); err == nil {
			js = buf.Bytes()
		} else {
			js = []byte("null") // not JSON at all: never produced by a store
		}
	}
	b = append(b, js...)
	return append(b, eventSuffix...)
}

// appendEvent appends a rare event (hello, reset) whose data is v as JSON.
func appendEvent(b []byte, name string, v any) []byte {
	js, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are passed
	}
	b = append(b, `{"event":"`...)
	b = append(b, name...)
	b = append(b, `","data":`...)
	b = append(b, js...)
	return append(b, eventSuffix...)
}

// appendHeartbeat appends {"event":"hb","data":{"head":"<id>","server_time":<ms>}}.
func appendHeartbeat(b []byte, head string, now time.Time) []byte {
	b = append(b, `{"event":"hb","data":{"head":`...)
	b = strconv.AppendQuote(b, head) // an ID: hex digits, '-' and decimal digits
	b = append(b, `,"server_time":`...)
	b = strconv.AppendInt(b, now.UnixMilli(), 10)
	return append(b, "}}\n"...)
}

// Client → server: one text message, one JSON object:
//
//	{"op":"subscribe","topics":["cpu",…],"after":"<id>"}
//
// topics absent, null or empty: every topic (as topics= on the URL); after
// absent, null or "": go on from the connection's current position.
// Anything else — another op, another field, another type, trailing bytes —
// is refused.
type clientMessage struct {
	Op     string   `json:"op"`
	Topics []string `json:"topics"`
	After  *string  `json:"after"`
}

// Reasons a client message is refused (the close reason sent with 1008).
var (
	errMalformed = errors.New(`malformed message: want {"op":"subscribe","topics":[...],"after":"<id>"}`)
	errUnknownOp = errors.New(`unknown op: only "subscribe" is accepted`)
)

// parseClientMessage turns a client's text message into the subscription it
// asks for, or says why it is refused (errMalformed, errUnknownOp).
func parseClientMessage(b []byte) (hub.Request, error) {
	var m clientMessage
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return hub.Request{}, errMalformed // null, an array, a number: not an object
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return hub.Request{}, errMalformed
	}
	if _, err := d.Token(); err == nil || !errors.Is(err, io.EOF) {
		return hub.Request{}, errMalformed // trailing data after the object
	}
	if m.Op != "subscribe" {
		return hub.Request{}, errUnknownOp
	}
	req := hub.Request{Topics: hub.ParseTopics(m.Topics)}
	if m.After == nil || *m.After == "" {
		req.Continue = true
	} else {
		req.Cursor = *m.After
	}
	return req, nil
}
