// Command livedash-bench is the SSE load tool. It opens N stream clients
// against a livedash server, or against the baseline it serves itself
// (livedash-bench serve-baseline: a hub that only broadcasts pre-encoded
// bytes, see baseline.go), and reports sample-to-client latency (from each
// frame's "ts"), gaps and duplicates (from the IDs), deliveries per second,
// and the server's CPU and RSS read from /proc/<pid>.
//
//	livedash-bench -url http://127.0.0.1:7070/api/v1/stream -pid $(pidof livedash) -clients 1000 -duration 10s
//	livedash-bench serve-baseline -addr 127.0.0.1:9100 -rate 1 -batch 8 -size 500 &
//	livedash-bench -url http://127.0.0.1:9100/ -pid $! -clients 1000 -duration 10s
//	livedash-bench -scenario storm -storm 5000 -behind 100 -control 100 -url … -pid …
//	livedash-bench -scenario longpoll -clients 5000 -rounds 5 -token T -url http://127.0.0.1:7070/
//	livedash-bench -transport ws -url http://127.0.0.1:7070/api/v1/ws -pid $(pidof livedash) -clients 10000
//
// Clients are plain TCP connections speaking just enough HTTP/1.1 (chunked)
// and SSE — or, with -transport ws, the WebSocket handshake and frames — to
// count frames, so that the tool itself costs little CPU: on a
// 2-core machine the load client shares the cores with the server. They are
// spread over the source addresses 127.0.0.2, 127.0.0.3, … (about 28k
// ephemeral ports each). Only loopback targets are accepted, and the number
// of clients and the duration are bounded.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Bounds: this is a loopback benchmark, not a load generator for others' hosts.
const (
	maxClients  = 20000
	maxDuration = 5 * time.Minute
)

type options struct {
	url      string
	pid      int
	scenario string
	clients  int
	duration time.Duration
	warmup   time.Duration
	sources  int
	// TLS, login, HTTP/2 (secure.go)
	tls   bool
	basic string
	h2    bool
	// storm
	storm   int
	behind  int
	control int
	probe   int
	// longpoll
	rounds int
	token  string
	// transport: sse (GET /api/v1/stream) or ws (GET /api/v1/ws)
	transport string
	deflate   bool // ws: offer permessage-deflate
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "livedash-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "serve-baseline" {
		return runServeBaseline(ctx, args[1:], stderr)
	}
	if len(args) > 0 && args[0] == "gencert" {
		return runGenCert(args[1:], stdout, stderr)
	}
	var o options
	fs := flag.NewFlagSet("livedash-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: livedash-bench [flags]\n       livedash-bench serve-baseline [-addr a] [-rate r] [-batch n] [-size b]\n       livedash-bench gencert -dir d [-basic user:password]")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.url, "url", "http://127.0.0.1:7070/api/v1/stream", "stream URL (loopback only)")
	fs.IntVar(&o.pid, "pid", 0, "server process id, for CPU and RSS from /proc (0: not measured)")
	fs.StringVar(&o.scenario, "scenario", "steady", "steady | storm | longpoll | pipeline | idle (probe: the storm's own-process control clients)")
	fs.StringVar(&o.transport, "transport", "sse", "steady, storm: sse (the -url is an event stream) or ws (the -url is /api/v1/ws: WebSocket)")
	fs.BoolVar(&o.deflate, "deflate", false, "ws: offer permessage-deflate (used when the server enables it)")
	fs.IntVar(&o.rounds, "rounds", 5, "longpoll: measured rounds (after one warm-up)")
	fs.StringVar(&o.token, "token", "", "longpoll: the server's push.token")
	fs.IntVar(&o.clients, "clients", 1000, "steady: number of clients")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measurement time")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "time after connecting before measuring")
	fs.IntVar(&o.sources, "sources", 0, "source addresses 127.0.0.2… to use (0: one per 20,000 clients, at least 2)")
	fs.IntVar(&o.storm, "storm", 5000, "storm: clients that reconnect at once")
	fs.IntVar(&o.behind, "behind", 100, "storm: frames each storm client misses before reconnecting")
	fs.IntVar(&o.control, "control", 100, "storm: connected control clients")
	fs.IntVar(&o.probe, "probe", 100, "storm: control clients measured again from a process of their own (0: none)")
	addSecureFlags(fs, &o)
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := checkTarget(o.url)
	if err != nil {
		return err
	}
	if err := o.checkSecure(u); err != nil {
		return err
	}
	total := o.clients
	if o.scenario == "storm" {
		total = o.storm + o.control
	}
	switch {
	case total <= 0 || total > maxClients:
		return fmt.Errorf("clients: %d, want 1…%d", total, maxClients)
	case o.duration <= 0 || o.duration > maxDuration:
		return fmt.Errorf("duration %v, want up to %v", o.duration, maxDuration)
	case o.transport != "sse" && o.transport != "ws":
		return fmt.Errorf("-transport %q: want sse or ws", o.transport)
	case o.scenario != "steady" && o.scenario != "storm" && o.scenario != "longpoll" && o.scenario != "probe" && o.scenario != "pipeline" && o.scenario != "idle":
		return fmt.Errorf("unknown scenario %q", o.scenario)
	case o.scenario == "storm" && (o.behind <= 0 || o.control <= 0 || o.storm <= 0 || o.probe < 0 || o.probe > maxClients-total):
		return errors.New("storm: -storm, -behind and -control must be positive, -probe not negative")
	case o.scenario == "longpoll" && (o.rounds <= 0 || o.rounds > 100 || o.token == ""):
		return errors.New("longpoll: -rounds must be 1…100 and -token set")
	}
	if o.sources <= 0 {
		o.sources = max(2, (total+19999)/20000)
	}
	ctx, cancel := context.WithTimeout(ctx, o.warmup+3*o.duration+2*time.Minute)
	defer cancel()
	b := &bench{o: o, target: u}
	switch o.scenario {
	case "storm":
		return b.storm(ctx, stdout)
	case "longpoll":
		return b.longpoll(ctx, stdout)
	case "probe":
		return b.probe(ctx, stdout)
	case "pipeline":
		return b.pipeline(ctx, stdout)
	case "idle":
		return b.idle(ctx, stdout)
	}
	return b.steady(ctx, stdout)
}

// checkTarget accepts only http and https URLs whose host resolves to
// 127.0.0.0/8 only.
func checkTarget(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-url %q: want http(s)://127.x.x.x:port/path", raw)
	}
	host := u.Hostname()
	addrs, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip4", host)
	if err != nil || len(addrs) == 0 {
		return nil, fmt.Errorf("-url host %q does not resolve to IPv4", host)
	}
	for i, a := range addrs {
		a = a.Unmap()
		addrs[i] = a
		if !a.Is4() || a.As4()[0] != 127 {
			return nil, fmt.Errorf("-url host %q resolves to %v: only loopback (127.0.0.0/8) targets are allowed", host, a)
		}
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(addrs[0].String(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	} else {
		u.Host = net.JoinHostPort(addrs[0].String(), u.Port())
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return u, nil
}

func (b *bench) sourceIP(i int) net.IP { return net.IPv4(127, 0, 0, byte(2+i%b.o.sources)) }

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
}

var _ = strings.Cut
