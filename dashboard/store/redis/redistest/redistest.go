// Package redistest starts real redis-server processes for tests: each on a
// free loopback port, in its own temporary directory, without persistence
// unless asked for, and killed when the test ends. Nothing is mocked: the
// tests of the Redis store and of the server run against Debian's
// redis-server. When the binary is missing the test fails with a message
// saying how to install it; it is never skipped silently.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options configure Start.
type Options struct {
	// Persist keeps the data across Kill and Restart: an append-only file
	// fsynced on every write. Without it (the default, started with
	// --save "" --appendonly no) a restart loses everything, which is the
	// "Redis restarted without its data" case.
	Persist bool
	// Password, when set, is required of clients (requirepass).
	Password string
	// ConfigFile, when set, is a redis.conf the server reads first; the
	// options Start passes on the command line (port, bind, dir, logging,
	// and requirepass when Password is set) come after it and win.
	// Persistence (save, appendonly, appendfsync) is the file's: Persist is
	// unused.
	ConfigFile string
}

// Server is one redis-server process.
type Server struct {
	Port int
	Addr string // 127.0.0.1:port
	Dir  string // the server's working directory (its data files)

	tb   testing.TB
	bin  string
	opts Options

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    bytes.Buffer
}

// Binary returns the path of redis-server: the one on PATH, else
// /usr/bin/redis-server. It fails the test when neither exists.
func Binary(tb testing.TB) string {
	tb.Helper()
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/redis-server"); err == nil {
		return "/usr/bin/redis-server"
	}
	tb.Fatal("redis-server not found on PATH or at /usr/bin/redis-server: these tests need a real Redis; " +
		"install it with `make test-deps` (apt-get install -y redis-server)")
	return ""
}

// Start starts a redis-server on a free loopback port and stops it (SIGKILL)
// when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := &Server{tb: tb, bin: Binary(tb), opts: opts, Dir: tb.TempDir()}
	var err error
	// Another process may take the free port between the probe and the
	// server's bind: try a few ports.
	for range 5 {
		if s.Port, err = freePort(); err != nil {
			tb.Fatalf("find a free port: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	tb.Cleanup(s.Kill)
	return s
}

// URL is the server's redis:// URL (with the password when one is set).
func (s *Server) URL() string {
	if s.opts.Password != "" {
		return fmt.Sprintf("redis://:%s@%s/0", s.opts.Password, s.Addr)
	}
	return fmt.Sprintf("redis://%s/0", s.Addr)
}

func (s *Server) args() []string {
	var a []string
	if s.opts.ConfigFile != "" {
		a = append(a, s.opts.ConfigFile)
	}
	a = append(a,
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--daemonize", "no", "--loglevel", "warning", "--logfile", "",
		"--protected-mode", "no",
	)
	switch {
	case s.opts.ConfigFile != "":
		// persistence as the file says
	case s.opts.Persist:
		a = append(a, "--save", "", "--appendonly", "yes", "--appendfsync", "always")
	default:
		a = append(a, "--save", "", "--appendonly", "no")
	}
	if s.opts.Password != "" {
		a = append(a, "--requirepass", s.opts.Password)
	}
	return a
}

// start runs the server and waits until it answers PING.
func (s *Server) start() error {
	cmd := exec.Command(s.bin, s.args()...)
	cmd.Dir = s.Dir
	s.mu.Lock()
	s.log.Reset()
	cmd.Stdout, cmd.Stderr = &lockedWriter{s}, &lockedWriter{s}
	s.mu.Unlock()
	// The server must not outlive the test binary, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ping(s.Addr, s.opts.Password); err == nil {
			break
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on %s did not answer PING within 10s: %v\n%s", s.Addr, err, s.output())
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited at start:\n%s", s.Addr, s.output())
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return nil
}

type lockedWriter struct{ s *Server }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.s.log.Len() < 64<<10 {
		w.s.log.Write(p)
	}
	return len(p), nil
}

func (s *Server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Kill stops the server with SIGKILL (no shutdown save) and waits for it to
// exit. Killing a stopped server does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Restart kills the server if it runs and starts it again on the same port
// and directory: with Persist the data comes back, without it Redis starts
// empty.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	var err error
	// The port was just released; a parallel test could take it, but
	// nothing else binds a port chosen moments ago in practice.
	for range 50 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.tb.Fatalf("restart redis-server on %s: %v", s.Addr, err)
}

// Do sends one command and returns its reply as text (errors as "-ERR …"),
// for tests that poke at the server behind the store's back.
func (s *Server) Do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if s.opts.Password != "" {
		if _, err := c.Write(command("AUTH", s.opts.Password)); err != nil {
			return "", err
		}
		if _, err := readReply(r); err != nil {
			return "", err
		}
	}
	if _, err := c.Write(command(args...)); err != nil {
		return "", err
	}
	return readReply(r)
}

func command(args ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

// readReply reads one RESP2 reply and renders it as text: arrays as their
// items joined by newlines, nil as "(nil)".
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply line")
	}
	switch line[0] {
	case '+', '-', ':':
		return line[1:], nil
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "(nil)", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "(nil)", nil
		}
		items := make([]string, 0, n)
		for range n {
			it, err := readReply(r)
			if err != nil {
				return "", err
			}
			items = append(items, it)
		}
		return strings.Join(items, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

func ping(addr, password string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	r := bufio.NewReader(c)
	if password != "" {
		if _, err := c.Write(command("AUTH", password)); err != nil {
			return err
		}
		if _, err := readReply(r); err != nil {
			return err
		}
	}
	if _, err := c.Write(command("PING")); err != nil {
		return err
	}
	reply, err := readReply(r)
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("PING answered %q", reply)
	}
	return nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// UnusedAddr returns a loopback address nothing listens on, for "Redis
// unreachable" tests.
func UnusedAddr(tb testing.TB) string {
	tb.Helper()
	p, err := freePort()
	if err != nil {
		tb.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}
