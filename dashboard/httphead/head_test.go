package httphead

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"go.uber.org/goleak"
	"golang.org/x/net/http/httpguts"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Whatever PlainGet accepts must be read by net/http the same way, and
// whatever is in doubt must be refused (the end-to-end tests in dashboard
// and cmd/livedash check the answers on real connections).

func TestPlainGet(t *testing.T) {
	type want struct{ query, value string }
	ok := map[string]want{
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\n\r\n":                                                       {},
		"GET /api/v1/frames?topics=a&wait=30s HTTP/1.1\r\nHost: 127.0.0.1:7070\r\nAccept: */*\r\n\r\n":         {query: "topics=a&wait=30s"},
		"GET /api/v1/frames?wait=1s HTTP/1.1\r\nhost:x\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n": {query: "wait=1s"},
		"GET /api/v1/frames?after=%2e HTTP/1.1\r\nHost: [::1]:80\r\nUser-Agent: a b\t c\r\n\r\n":               {query: "after=%2e"},
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nlast-event-id:  \t 5-7 \r\n\r\n":                            {value: "5-7"},
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nLast-Event-ID: a\r\nLast-Event-Id: b\r\n\r\n":               {value: "a"}, // the first, as Header.Get
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nLast-Event-ID:\r\n\r\n":                                     {},
	}
	for head, w := range ok {
		q, v, accepted := PlainGet([]byte(head), "/api/v1/frames", 8<<10, "Last-Event-ID")
		if !accepted || q != w.query || v != w.value {
			t.Errorf("%q: (%q, %q, %v), want (%q, %q, true)", head, q, v, accepted, w.query, w.value)
		}
	}
	if _, v, _ := PlainGet([]byte("GET /a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 1\r\n\r\n"), "/a", 10, ""); v != "" {
		t.Errorf("no field asked, got %q", v)
	}
	refused := []string{
		"",
		"\r\n",
		"GET /api/v1/frames HTTP/1.1\r\n\r\n", // no Host
		"GET /api/v1/frames HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",    // two
		"GET /api/v1/frames HTTP/1.1\r\nHost: \r\n\r\n",                // empty
		"GET /api/v1/frames HTTP/1.1\r\nHost: a/b\r\n\r\n",             // invalid
		"GET /api/v1/frames HTTP/1.0\r\nHost: x\r\n\r\n",               // HTTP/1.0: no keep-alive by default
		"HEAD /api/v1/frames HTTP/1.1\r\nHost: x\r\n\r\n",              // not GET
		"get /api/v1/frames HTTP/1.1\r\nHost: x\r\n\r\n",               // methods are case-sensitive
		"GET /api/v1/frames/ HTTP/1.1\r\nHost: x\r\n\r\n",              // another path
		"GET /api/v1/framesx HTTP/1.1\r\nHost: x\r\n\r\n",              // another path
		"GET /api/v1/frame HTTP/1.1\r\nHost: x\r\n\r\n",                // another path
		"GET /api/v1/%66rames HTTP/1.1\r\nHost: x\r\n\r\n",             // escaped
		"GET http://x/api/v1/frames HTTP/1.1\r\nHost: x\r\n\r\n",       // absolute form
		"GET /api/v1/frames?a b HTTP/1.1\r\nHost: x\r\n\r\n",           // space in target
		"GET /api/v1/frames?a#b HTTP/1.1\r\nHost: x\r\n\r\n",           // fragment
		"GET /api/v1/frames?\xff HTTP/1.1\r\nHost: x\r\n\r\n",          // not ASCII
		"GET /api/v1/frames HTTP/1.1\nHost: x\n\n",                     // bare LF
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\n X: folded\r\n\r\n", // obs-fold
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nX : y\r\n\r\n",      // space before colon
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",    // no colon
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",  // control byte
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nLast-Event-ID: a\x7fb\r\n\r\n",
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",  // a body
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nContent-Length: 00\r\n\r\n", // not plainly 0
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nOrigin: http://a.example\r\n\r\n", // CORS is the middleware's
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nTrailer: X\r\n\r\n",
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\n\r\nGET", // bytes after the head
		"GET /api/v1/frames?" + strings.Repeat("a", 8<<10+1) + " HTTP/1.1\r\nHost: x\r\n\r\n",
	}
	for _, head := range refused {
		if q, _, accepted := PlainGet([]byte(head), "/api/v1/frames", 8<<10, "Last-Event-ID"); accepted {
			t.Errorf("%.80q accepted (query %.40q)", head, q)
		}
	}
}

func TestRead(t *testing.T) {
	const head = "GET /api/v1/frames?wait=1s HTTP/1.1\r\nHost: x\r\nX-Long: " + "0123456789abcdef0123456789abcdef" + "\r\n\r\n"
	const next = "GET /next HTTP/1.1\r\n\r\n"
	// One byte per read, a buffer shorter than a line: the head is whole,
	// the next request stays unread, and started is called once the first
	// byte is in but not the whole head.
	br := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(head+next)), 16)
	calls := 0
	got, err := Read(br, nil, 1<<10, func() { calls++ })
	if err != nil || string(got) != head || calls != 1 {
		t.Fatalf("Read = %q, %v (started called %d times)", got, err, calls)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != next {
		t.Fatalf("left %q unread, want %q", rest, next)
	}
	// A head that arrived whole sets no deadline.
	calls = 0
	br = bufio.NewReader(strings.NewReader(head))
	if got, err := Read(br, nil, 1<<10, func() { calls++ }); err != nil || string(got) != head || calls != 0 {
		t.Fatalf("whole head: %q, %v, started %d", got, err, calls)
	}
	// Over the limit: stop there, with what was read, for net/http to answer 431.
	br = bufio.NewReader(strings.NewReader(head))
	if got, err := Read(br, nil, 40, func() {}); !errors.Is(err, ErrTooLarge) || len(got) > 40+len(head) || !strings.HasPrefix(head, string(got)) {
		t.Fatalf("over the limit: %q, %v", got, err)
	}
	// Cut short: the error, never a head.
	br = bufio.NewReader(strings.NewReader(head[:30]))
	if _, err := Read(br, nil, 1<<10, func() {}); err == nil {
		t.Fatal("a head cut short was read without error")
	}
}

func TestPrefixConnReadsPrefixFirst(t *testing.T) {
	c := &PrefixConn{Conn: nil, Prefix: []byte("abc")}
	b := make([]byte, 2)
	if n, err := c.Read(b); n != 2 || err != nil || string(b) != "ab" {
		t.Fatalf("%q %v", b[:n], err)
	}
	if n, err := c.Read(b); n != 1 || err != nil || b[0] != 'c' {
		t.Fatalf("%q %v", b[:n], err)
	}
}

// FuzzPlainGet checks every head PlainGet accepts, for the two paths served
// this way, against net/http's own reader: it must read the same request —
// GET of that path over HTTP/1.1 with the same raw query and the same
// Last-Event-ID, one Host, no body, kept alive, without the headers that
// change how the server answers.
func FuzzPlainGet(f *testing.F) {
	for _, s := range []string{
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /api/v1/frames?topics=a&wait=30s HTTP/1.1\r\nHost: 127.0.0.1:7070\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
		"GET /api/v1/frames?wait=1s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /api/v1/frames HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
		"GET /api/v1/stream?topics=cpu HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 0000000000000001-0000000000000005\r\n\r\n",
		"GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nlast-event-id: \t x \r\nLast-Event-ID: y\r\nAccept: text/event-stream\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		for _, path := range []string{"/api/v1/frames", "/api/v1/stream"} {
			query, value, ok := PlainGet(head, path, 8<<10, "Last-Event-ID")
			if !ok {
				continue
			}
			req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
			if err != nil {
				t.Fatalf("accepted %q; net/http: %v", head, err)
			}
			if req.Method != http.MethodGet || req.URL.Path != path || req.URL.RawPath != "" ||
				req.URL.RawQuery != query || req.URL.Fragment != "" || !req.ProtoAtLeast(1, 1) || req.ProtoMinor != 1 ||
				req.ContentLength != 0 || len(req.TransferEncoding) != 0 || req.Close ||
				req.Host == "" || len(req.Trailer) != 0 {
				t.Fatalf("accepted %q as query %q; net/http reads %s %q %q proto %s length %d te %v close %v host %q",
					head, query, req.Method, req.URL.Path, req.URL.RawQuery, req.Proto, req.ContentLength,
					req.TransferEncoding, req.Close, req.Host)
			}
			if got := req.Header.Get("Last-Event-ID"); got != value {
				t.Fatalf("accepted %q with Last-Event-ID %q; net/http reads %q", head, value, got)
			}
			for _, h := range []string{"Origin", "Expect", "Upgrade"} {
				if _, has := req.Header[h]; has {
					t.Fatalf("accepted %q with %s", head, h)
				}
			}
			// What net/http's server checks beyond ReadRequest (server.go, readRequest).
			if !httpguts.ValidHostHeader(req.Host) {
				t.Fatalf("accepted %q; net/http's server refuses Host %q", head, req.Host)
			}
			for k, vv := range req.Header {
				if !httpguts.ValidHeaderFieldName(k) {
					t.Fatalf("accepted %q; net/http's server refuses header name %q", head, k)
				}
				for _, v := range vv {
					if !httpguts.ValidHeaderFieldValue(v) {
						t.Fatalf("accepted %q; net/http's server refuses header value %q", head, v)
					}
				}
			}
		}
	})
}
