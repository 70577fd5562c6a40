package dashboard

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ConnHooks is what a part that takes connections over from the HTTP server
// (the API's long-poll loop) needs from the server.
type ConnHooks struct {
	// Handback gives a taken-over connection back: the HTTP server serves it
	// again from conn's next unread byte, as if it had just been accepted.
	Handback func(conn net.Conn)
	// Requests returns the request counter of one route, method and status,
	// for the answers the part writes itself.
	Requests func(route, method string, code int) prometheus.Counter
	// Headers are the headers the server's middleware sets on /api/ answers.
	Headers http.Header
	// The server's limits, for the requests the part reads itself.
	MaxQueryBytes     int
	MaxHeaderBytes    int
	IdleTimeout       time.Duration
	ReadHeaderTimeout time.Duration
}

// handbackListener is a net.Listener whose Accept returns the connections
// handed to net/http by a part that read from them first: the front door
// (every connection that is not a plain stream request) and the API's
// long-poll loop. http.Server serves it (beside the real listener when there
// is no front door) and closes it on Shutdown, after which handed-back
// connections are closed.
type handbackListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandbackListener(addr net.Addr) *handbackListener {
	return &handbackListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// put waits until the server accepts conn, or closes conn when the listener
// is closed. The channel is unbuffered so that no connection can be left
// behind in it when the listener closes.
func (l *handbackListener) put(conn net.Conn) {
	select {
	case <-l.done:
		_ = conn.Close()
		return
	default:
	}
	select {
	case l.ch <- conn:
	case <-l.done:
		_ = conn.Close()
	}
}

func (l *handbackListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handbackListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handbackListener) Addr() net.Addr { return l.addr }
