package ws

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzParseClientMessage: whatever a client sends, the parser returns a
// request or one of its two refusals — never panics — and accepts only a
// JSON object whose op is "subscribe".
func FuzzParseClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"op":"subscribe","topics":["cpu","memory"],"after":"9f2c41d07a3be511-1042"}`,
		`{"op":"subscribe"}`,
		`{"op":"subscribe","topics":null,"after":null}`,
		`{"op":"subscribe","topics":["a,b"," c "],"after":""}`,
		`{"op":"unsubscribe"}`,
		`{"op":"subscribe","topic":"cpu"}`,
		`{"op":"subscribe"} {"op":"subscribe"}`,
		`[{"op":"subscribe"}]`,
		`null`,
		"{\"op\":\"subscribe\",\"after\":\"\\u0000\\r\\n\"}",
		"\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := parseClientMessage(b)
		switch {
		case err == nil:
		case errors.Is(err, errMalformed) || errors.Is(err, errUnknownOp):
			if len(err.Error()) > 123 {
				t.Fatal("close reason over 123 bytes")
			}
			return
		default:
			t.Fatalf("unexpected error %v", err)
		}
		var m map[string]any
		if json.Unmarshal(b, &m) != nil || m["op"] != "subscribe" {
			t.Fatalf("accepted %q", b)
		}
		if req.Continue != (req.Cursor == "") {
			t.Fatalf("cursor %q with continue %v", req.Cursor, req.Continue)
		}
		if len(req.Topics) > 256 {
			t.Fatalf("%d topics", len(req.Topics))
		}
		for tp := range req.Topics {
			if tp == "" || !utf8.ValidString(tp) && utf8.Valid(b) {
				t.Fatalf("topic %q", tp)
			}
		}
	})
}
