package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReadAnswer(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 5\r\nDate: x\r\n\r\nhello"
	const chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
	const unavailable = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"
	const noLength = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello"
	const badLength = "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello"
	cases := []struct {
		name, in string
		want     []string // bodies, in order
		err      bool     // the answer after the wanted ones fails
	}{
		{"content-length", ok, []string{"hello"}, false},
		{"pipelined", ok + ok, []string{"hello", "hello"}, false},
		{"chunked", chunked + ok, []string{"hello", "hello"}, false},
		{"not 200", unavailable, nil, true},
		{"read to close", noLength, []string{"hello"}, false},
		{"bad length", badLength, nil, true},
		{"truncated body", ok[:len(ok)-2], nil, true},
		{"truncated head", ok[:20], nil, true},
		{"empty", "", nil, true},
	}
	for _, tc := range cases {
		for _, oneByte := range []bool{false, true} {
			var src io.Reader = strings.NewReader(tc.in)
			if oneByte {
				src = iotest.OneByteReader(src)
			}
			r := bufio.NewReader(src)
			for i, want := range tc.want {
				got, err := readAnswer(r)
				if err != nil || string(got) != want {
					t.Fatalf("%s (one byte %v) answer %d: %q, %v; want %q", tc.name, oneByte, i, got, err, want)
				}
			}
			if tc.err {
				if got, err := readAnswer(r); err == nil {
					t.Fatalf("%s (one byte %v): %q, want an error", tc.name, oneByte, got)
				}
			}
		}
	}
}

// FuzzReadAnswer checks the fast path against net/http's parser: whatever
// readAnswer accepts, http.ReadResponse reads the same status and body.
func FuzzReadAnswer(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"))
	f.Fuzz(func(t *testing.T, in []byte) {
		body, err := readAnswer(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		resp, rerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(in)), nil)
		if rerr != nil {
			t.Fatalf("readAnswer accepted %q (body %q); net/http: %v", in, body, rerr)
		}
		defer resp.Body.Close()
		want, rerr := io.ReadAll(resp.Body)
		if rerr != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
			t.Fatalf("readAnswer %q; net/http %d %q %v", body, resp.StatusCode, want, rerr)
		}
	})
}
