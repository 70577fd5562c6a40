package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The storm's control clients share the load tool's Go runtime with the
// thousands of storm clients that read their replays at the same moment, so
// part of the delay they measure is queueing in the load tool's own
// scheduler, which no real client (another browser, another host) has. The
// probe is a second set of control clients in a process of their own: the
// storm scenario starts it (-probe N), tells it over stdin when the baseline
// and the storm start, and reads its percentiles when the storm is over.
// Both measurements are reported.

// stdin is what the probe process reads its commands from.
var stdin io.Reader = os.Stdin

// probe runs the probe process: it connects b.o.clients streaming clients,
// prints "probe connected", then starts a new measuring window at each
// "mark" line on stdin and, at "report", prints one line per window
// ("window <n> <elapsed ns> <p50 ns> <p99 ns> <max ns> <frames> <gaps> <dups>")
// and returns.
func (b *bench) probe(ctx context.Context, w io.Writer) error {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	g := b.newGroup(b.o.clients, 0)
	var wg sync.WaitGroup
	if err := b.connectAll(runCtx, g, &wg); err != nil {
		return err
	}
	defer wg.Wait()
	defer stop()
	fmt.Fprintln(w, "probe connected")
	var windows []*stats
	var ends []time.Time
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "mark":
			if n := len(windows); n > 0 {
				ends = append(ends, time.Now())
			}
			st := newStats()
			windows = append(windows, st)
			g.st.Store(st)
		case "report":
			ends = append(ends, time.Now())
			for i, st := range windows {
				fmt.Fprintf(w, "window %d %d %d %d %d %d %d %d\n", i+1, ends[i].Sub(st.start).Nanoseconds(),
					st.percentile(.5).Nanoseconds(), st.percentile(.99).Nanoseconds(), st.max().Nanoseconds(),
					st.frames.Load(), st.gaps.Load(), st.dups.Load())
			}
			return nil
		default:
			return fmt.Errorf("probe: unknown command %q", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("probe: stdin closed before report")
}

// probeWindow is one measuring window of the probe process.
type probeWindow struct {
	elapsed, p50, p99, max time.Duration
	frames, gaps, dups     int64
}

// parseProbeWindow reads a "window …" line of the probe process.
func parseProbeWindow(line string) (probeWindow, error) {
	f := strings.Fields(line)
	if len(f) != 9 || f[0] != "window" {
		return probeWindow{}, fmt.Errorf("probe: unexpected line %q", line)
	}
	var v [7]int64
	for i := range v {
		n, err := strconv.ParseInt(f[i+2], 10, 64)
		if err != nil || n < 0 {
			return probeWindow{}, fmt.Errorf("probe: unexpected line %q", line)
		}
		v[i] = n
	}
	return probeWindow{time.Duration(v[0]), time.Duration(v[1]), time.Duration(v[2]), time.Duration(v[3]), v[4], v[5], v[6]}, nil
}

// probeProc is a running probe process, seen from the storm scenario.
type probeProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startProbe starts the probe process with n clients on b's target and
// waits until they are connected.
func (b *bench) startProbe(ctx context.Context, n int) (*probeProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "-scenario", "probe", "-clients", strconv.Itoa(n),
		"-url", b.target.String(), "-sources", strconv.Itoa(b.o.sources), "-duration", b.o.duration.String(),
		"-tls="+strconv.FormatBool(b.o.tls), "-basic", b.o.basic)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &probeProc{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	if !p.out.Scan() || p.out.Text() != "probe connected" {
		p.stop()
		return nil, fmt.Errorf("probe process did not connect (%q)", p.out.Text())
	}
	return p, nil
}

// mark starts the probe's next window.
func (p *probeProc) mark() error {
	_, err := io.WriteString(p.in, "mark\n")
	return err
}

// report ends the last window and returns all of them.
func (p *probeProc) report() ([]probeWindow, error) {
	if _, err := io.WriteString(p.in, "report\n"); err != nil {
		return nil, err
	}
	var ws []probeWindow
	for p.out.Scan() {
		w, err := parseProbeWindow(p.out.Text())
		if err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, p.cmd.Wait()
}

// stop ends the probe process if it still runs.
func (p *probeProc) stop() {
	_ = p.in.Close()
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}
