package dashboard

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"livedash/dashboard/clientip"
)

// fakeListener hands out one in-memory connection per remote address.
type fakeListener struct {
	addrs  []string
	closed []string // remote addresses of connections closed (by the limit)
}

type fakeConn struct {
	net.Conn
	remote net.Addr
	l      *fakeListener
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error {
	c.l.closed = append(c.l.closed, c.remote.String())
	return nil
}

func (l *fakeListener) Accept() (net.Conn, error) {
	if len(l.addrs) == 0 {
		return nil, net.ErrClosed
	}
	a := l.addrs[0]
	l.addrs = l.addrs[1:]
	return &fakeConn{remote: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(a)), l: l}, nil
}
func (l *fakeListener) Close() error   { return nil }
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

// The connection cap counts an IPv6 /64 as one client, exempts trusted
// proxies, and gives a slot back when its connection closes.
func TestClientConnLimitPer64(t *testing.T) {
	fl := &fakeListener{addrs: []string{
		"[2001:db8:1:2::1]:1000", "[2001:db8:1:2::2]:1000",
		"[2001:db8:1:2:ffff::3]:1000",                        // third of the same /64: closed
		"[2001:db8:1:3::1]:1000",                             // another /64
		"[::ffff:127.0.0.1]:1", "127.0.0.1:2", "127.0.0.1:3", // a trusted proxy: never capped
	}}
	l := &clientConnLimit{Listener: fl, max: 2, rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}), conns: map[netip.Addr]int{},
		trusted: clientip.NewResolver([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})}
	var got []net.Conn
	for {
		c, err := l.Accept()
		if err != nil {
			break
		}
		got = append(got, c)
	}
	if len(got) != 6 || len(fl.closed) != 1 || fl.closed[0] != "[2001:db8:1:2:ffff::3]:1000" {
		t.Fatalf("accepted %d, closed at accept %q", len(got), fl.closed)
	}
	_ = got[0].Close()
	_ = got[0].Close() // a second close gives nothing back twice
	if n := l.conns[netip.MustParseAddr("2001:db8:1:2::")]; n != 1 {
		t.Fatalf("the /64 holds %d slots after one close, want 1", n)
	}
	fl.addrs = []string{"[2001:db8:1:2::9]:1", "[2001:db8:1:2::a]:1"}
	if c, err := l.Accept(); err != nil || c.RemoteAddr().String() != "[2001:db8:1:2::9]:1" {
		t.Fatalf("after a close, the /64 gets its slot back: %v %v", c, err)
	}
	if _, err := l.Accept(); err == nil {
		t.Fatal("the /64 got a third slot")
	}
}

// The API token bucket refills at its rate and says how long to wait.
func TestAPILimiter(t *testing.T) {
	l := newAPILimiter(2, 3)
	k := netip.MustParseAddr("192.0.2.1")
	now := time.Unix(0, 0)
	for i := range 3 {
		if _, ok := l.take(k, now); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	wait, ok := l.take(k, now)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("over the burst: %v %v, want a 500ms wait", ok, wait)
	}
	if _, ok := l.take(k, now.Add(500*time.Millisecond)); !ok {
		t.Fatal("refused after the refill time")
	}
	if _, ok := l.take(netip.MustParseAddr("192.0.2.2"), now); !ok {
		t.Fatal("another client refused")
	}
	l.take(k, now.Add(time.Hour)) // sweeps the idle bucket of 192.0.2.2
	if len(l.buckets) != 1 {
		t.Fatalf("%d buckets after a sweep, want 1", len(l.buckets))
	}
	if newAPILimiter(0, 10) != nil {
		t.Fatal("rate 0 is no limiter")
	}
}
