package ws

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// tcpPair is a loopback TCP connection whose far end is drained.
func tcpPair(b *testing.B) net.Conn {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkSend: one tick of 7 KiB sent as one message on a loopback
// socket (what every subscriber does once a second), against the bare
// write of the same bytes (what an SSE stream does).
func BenchmarkSend(b *testing.B) {
	msg := []byte(strings.Repeat(`{"event":"frame","data":{"id":"x","ts":1}}`+"\n", 7000/43))
	b.Run("raw", func(b *testing.B) {
		c := tcpPair(b)
		defer c.Close()
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for range b.N {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ws", func(b *testing.B) {
		nc := tcpPair(b)
		cn := &conn{Conn: nc}
		// A server-side websocket.Conn over cn, made by accepting a fake
		// handshake whose hijack hands out cn.
		w := &fakeHijack{hdr: http.Header{}, c: cn}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		wc, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			b.Fatal(err)
		}
		defer wc.CloseNow()
		s := &sink{c: wc, nc: cn, timeout: 10 * time.Second, m: newMetrics(prometheus.NewRegistry())}
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := s.send(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type fakeHijack struct {
	hdr http.Header
	c   *conn
}

func (f *fakeHijack) Header() http.Header         { return f.hdr }
func (f *fakeHijack) Write(b []byte) (int, error) { return len(b), nil }
func (f *fakeHijack) WriteHeader(int)             {}
func (f *fakeHijack) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return f.c, bufio.NewReadWriter(bufio.NewReaderSize(f.c, readBufSize), bufio.NewWriterSize(f.c, writeBufSize)), nil
}
