package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	sse "github.com/tmaxmax/go-sse"

	"livedash/dashboard/store"
)

const tailUsage = `Usage: livedash tail [flags]

Print frames from a livedash server as JSON lines (one frame per line) on
stdout, following the stream (GET /api/v1/stream) and reconnecting with
exponential backoff and full jitter. Resets (the server could not resume
from the given ID) are printed to stderr, and tail goes on from the head.
With --transport ws it follows GET /api/v1/ws instead (for proxies that
buffer event streams but pass WebSocket): the same output, cursor and
reconnects.

Flags:
`

// tailFlags are livedash tail's options.
type tailFlags struct {
	server      string
	topics      string
	since       string
	state       string
	maxBackoff  time.Duration
	idleTimeout time.Duration
	transport   string // sse or ws
}

// runTail implements `livedash tail`: a go-sse client wrapped in a reconnect
// loop of its own, because the go-sse client treats any non-200 answer as
// final (a 503 during a deploy would end it) and grows its backoff without a
// bound. Frames go to stdout as JSON lines; with --state, the ID of the last
// printed frame is written atomically (temp file + rename) after each batch,
// so `livedash tail --state F` resumes where it stopped: at least once —
// a crash between printing and saving repeats that batch, never skips it.
func runTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f tailFlags
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), tailUsage); fs.PrintDefaults() }
	fs.StringVar(&f.server, "server", "http://127.0.0.1:7070", "server base `URL`")
	fs.StringVar(&f.topics, "topics", "", "comma-separated `topics` (default all)")
	fs.StringVar(&f.since, "since", "", "resume after this frame `ID` (wins over --state)")
	fs.StringVar(&f.state, "state", "", "resume `file`: read at start, rewritten with the last ID after each batch")
	fs.DurationVar(&f.maxBackoff, "max-backoff", 30*time.Second, "longest wait between reconnects")
	fs.StringVar(&f.transport, "transport", "sse", "`sse` (GET /api/v1/stream) or ws (GET /api/v1/ws)")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", 45*time.Second,
		"reconnect when nothing (not even a heartbeat) arrives for this long; 0 = never")
	if help, err := parseFlags(fs, args, stdout, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("tail: unexpected argument %q", fs.Arg(0))
	}
	if f.transport != "sse" && f.transport != "ws" {
		return usageErr("tail: --transport %q: want sse or ws", truncate(f.transport, 20))
	}
	streamURL, err := tailURL(f.server, f.topics, f.transport)
	if err != nil {
		return usageErr("tail: --server: %v", err)
	}
	if f.maxBackoff <= 0 {
		return usageErr("tail: --max-backoff must be positive")
	}
	cursor := f.since
	if cursor != "" {
		if _, err := store.ParseID(cursor); err != nil {
			return usageErr("tail: --since %q is not a frame ID (<16 hex digits>-<seq>)", truncate(cursor, 80))
		}
	} else if f.state != "" {
		cursor = readState(f.state, stderr)
	}

	t := &tailer{
		url:    streamURL,
		cursor: cursor,
		flags:  f,
		stdout: bufio.NewWriterSize(stdout, 64<<10),
		stderr: stderr,
	}
	t.http = &http.Client{Transport: &activityTransport{base: http.DefaultTransport, last: &t.lastRead}}
	return t.loop(ctx)
}

func tailURL(server, topics, transport string) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", errors.New("not a URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q: want http://host:port or https://host:port", truncate(server, 80))
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/stream"
	if transport == "ws" {
		u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
		u.Path = strings.TrimSuffix(u.Path, "/stream") + "/ws"
	}
	q := url.Values{}
	if topics != "" {
		q.Set("topics", topics)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// readState returns the ID saved in path, or "" (start live) when there is
// none or it is not an ID.
func readState(path string, stderr io.Writer) string {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		fmt.Fprintf(stderr, "livedash tail: reading state: %v; starting live\n", err)
		return ""
	}
	id := strings.TrimSpace(string(b))
	if _, err := store.ParseID(id); err != nil {
		fmt.Fprintf(stderr, "livedash tail: state file %s holds no frame ID; starting live\n", path)
		return ""
	}
	return id
}

// writeState replaces path with id atomically (rename within the directory).
// No fsync: losing the last few IDs on power loss only repeats frames.
func writeState(path, id string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, werr := tmp.WriteString(id + "\n")
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return nil
}

type tailer struct {
	url    string
	flags  tailFlags
	http   *http.Client
	stdout *bufio.Writer
	stderr io.Writer

	lastRead atomic.Int64 // unix nanos of the last byte read from the server

	// Only the writer goroutine of the current session touches these.
	cursor string
	saved  string

	// warned is the list of unknown topics last warned about; only the
	// reader goroutine of the current session touches it.
	warned string
}

// warnUnknown says on stderr, once for each new list, which topics of
// --topics the server does not know (a typo, or a topic not pushed yet):
// tail keeps waiting for them rather than failing.
func (t *tailer) warnUnknown(topics []string) {
	list := strings.Join(topics, ", ")
	if list == t.warned {
		return
	}
	t.warned = list
	if list == "" {
		return
	}
	noun := "topic"
	if len(topics) > 1 {
		noun = "topics"
	}
	fmt.Fprintf(t.stderr, "livedash tail: warning: the server knows no %s %s: no collector or panel has it and no frame of it was seen (a typo, or nothing pushed yet); waiting for it\n", noun, list)
}

// tailItem is what the reader goroutine hands to the writer: a frame line
// (data non-empty) and/or a new cursor.
type tailItem struct {
	data string
	id   string
}

// loop connects, prints, and reconnects until ctx ends or stdout fails.
func (t *tailer) loop(ctx context.Context) error {
	const base = 500 * time.Millisecond
	attempt := 0
	for {
		hint, hello, err := t.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var oe *outputError
		if errors.As(err, &oe) {
			return oe.err
		}
		b := base
		if hint > 0 { // the stream got going: start over from the server's retry hint
			attempt, b = 0, max(base, hint)
		}
		// Full jitter: uniform in [0, min(max, b·2^attempt)).
		ceil := min(t.flags.maxBackoff, b<<min(attempt, 20))
		delay := rand.N(ceil) + time.Millisecond
		attempt++
		fmt.Fprintf(t.stderr, "livedash tail: %s; reconnecting in %v\n", describeEnd(err, hello), delay.Round(time.Millisecond))
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}

// describeEnd says why a session ended, for the reconnect line on stderr.
// A stream the server ends cleanly (it restarts or shuts down: a retry:
// hint, then the end of the body) is an ordinary reconnect, not a failure;
// so is a connection it closes before the stream began (over capacity, or
// shutting down).
func describeEnd(err error, hello bool) string {
	var ce *sse.ConnectionError
	if !errors.As(err, &ce) {
		return err.Error()
	}
	if ce.Err == nil || errors.Is(ce.Err, io.EOF) {
		if hello {
			return "the server closed the stream (restarting or shutting down)"
		}
		return "the server closed the connection before the stream began (over capacity or shutting down)"
	}
	return ce.Reason + ": " + ce.Err.Error()
}

// outputError is a failure to write stdout or the state file: tail stops.
type outputError struct{ err error }

func (e *outputError) Error() string { return e.err.Error() }

// session runs one connection. It returns the retry hint of the server's
// hello (0 when no hello arrived, i.e. the attempt failed), whether a hello
// arrived, and why it ended.
func (t *tailer) session(ctx context.Context) (retryHint time.Duration, hello bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if t.flags.transport == "ws" {
		return t.sessionWS(ctx, cancel)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return 0, false, &outputError{err}
	}
	if t.cursor != "" {
		req.Header.Set("Last-Event-ID", t.cursor)
	}
	// MaxRetries -1: one attempt per Connect; the loop above owns retrying.
	client := &sse.Client{HTTPClient: t.http, Backoff: sse.Backoff{MaxRetries: -1}}
	conn := client.NewConnection(req)
	conn.Buffer(nil, 4<<20) // frames larger than go-sse's 64 KiB default

	items := make(chan tailItem, 1024)
	var hint atomic.Int64
	conn.SubscribeToAll(func(ev sse.Event) {
		switch ev.Type {
		case "frame":
			items <- tailItem{data: ev.Data, id: ev.LastEventID}
		case "reset":
			fmt.Fprintf(t.stderr, "livedash tail: reset: %s\n", ev.Data)
			items <- tailItem{id: ev.LastEventID}
		case "hello":
			var h struct {
				RetryMS       int64    `json:"retry_ms"`
				UnknownTopics []string `json:"unknown_topics"`
			}
			_ = json.Unmarshal([]byte(ev.Data), &h)
			hint.Store(int64(max(h.RetryMS, 1)) * int64(time.Millisecond))
			t.warnUnknown(h.UnknownTopics)
			items <- tailItem{id: ev.LastEventID}
		}
	})

	return t.follow(ctx, cancel, items, &hint, conn.Connect)
}

// follow runs connect (which reads the server and sends what it reads to
// items until the connection ends) beside the writer and the idle watchdog,
// and says why the session ended.
func (t *tailer) follow(ctx context.Context, cancel context.CancelCauseFunc, items chan tailItem, hint *atomic.Int64,
	connect func() error) (time.Duration, bool, error) {
	var wg sync.WaitGroup
	var outErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if outErr = t.write(items); outErr != nil {
			cancel(outErr)
			for range items { // let the reader finish
			}
		}
	}()
	stopWatch := t.watchdog(ctx, cancel)
	t.lastRead.Store(time.Now().UnixNano())
	err := connect()
	stopWatch()
	close(items)
	wg.Wait()
	if outErr != nil {
		return 0, false, &outputError{outErr}
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && ctx.Err() != nil {
		err = cause
	}
	if err == nil {
		err = errors.New("stream ended")
	}
	return time.Duration(hint.Load()), hint.Load() > 0, err
}

// sessionWS is session over GET /api/v1/ws: the same events as JSON objects,
// several per message. The cursor goes on the URL; the hello's head is the
// position when there is none (as the SSE hello's id is).
func (t *tailer) sessionWS(ctx context.Context, cancel context.CancelCauseFunc) (time.Duration, bool, error) {
	u := t.url
	if t.cursor != "" {
		u += map[bool]string{false: "?", true: "&"}[strings.Contains(u, "?")] + "lastEventId=" + url.QueryEscape(t.cursor)
	}
	hadCursor := t.cursor != ""
	items := make(chan tailItem, 1024)
	var hint atomic.Int64
	return t.follow(ctx, cancel, items, &hint, func() error {
		c, _, err := websocket.Dial(ctx, u, nil)
		if err != nil {
			return err
		}
		defer c.CloseNow()
		c.SetReadLimit(64 << 20) // a replay chunk holds many frames
		for {
			// One reader, no timer on the read: the watchdog cancels ctx.
			_, msg, err := c.Read(ctx)
			if err != nil {
				return err
			}
			t.lastRead.Store(time.Now().UnixNano())
			for line := range bytes.SplitSeq(msg, []byte("\n")) {
				var ev struct {
					Event string          `json:"event"`
					Data  json.RawMessage `json:"data"`
				}
				if json.Unmarshal(line, &ev) != nil {
					return errors.New("the server sent something that is not an event")
				}
				var d struct {
					ID            string   `json:"id"`
					Head          string   `json:"head"`
					RetryMS       int64    `json:"retry_ms"`
					UnknownTopics []string `json:"unknown_topics"`
				}
				_ = json.Unmarshal(ev.Data, &d)
				switch ev.Event {
				case "frame":
					items <- tailItem{data: string(ev.Data), id: d.ID}
				case "reset":
					fmt.Fprintf(t.stderr, "livedash tail: reset: %s\n", ev.Data)
					items <- tailItem{id: d.Head}
				case "hello":
					hint.Store(int64(max(d.RetryMS, 1)) * int64(time.Millisecond))
					t.warnUnknown(d.UnknownTopics)
					if !hadCursor {
						items <- tailItem{id: d.Head}
					}
				}
			}
		}
	})
}

// write prints what arrives and saves the cursor after each batch: all items
// already queued are printed, stdout is flushed once, the state file is
// rewritten once.
func (t *tailer) write(items <-chan tailItem) error {
	for it := range items {
		batch := []tailItem{it}
	more:
		for {
			select {
			case it, ok := <-items:
				if !ok {
					break more
				}
				batch = append(batch, it)
			default:
				break more
			}
		}
		for _, it := range batch {
			if it.data != "" {
				if _, err := t.stdout.WriteString(it.data); err != nil {
					return err
				}
				if err := t.stdout.WriteByte('\n'); err != nil {
					return err
				}
			}
			if it.id != "" {
				t.cursor = it.id
			}
		}
		if err := t.stdout.Flush(); err != nil {
			return err
		}
		if t.flags.state != "" && t.cursor != t.saved {
			if err := writeState(t.flags.state, t.cursor); err != nil {
				return fmt.Errorf("write state: %w", err)
			}
			t.saved = t.cursor
		}
	}
	return nil
}

var errIdle = errors.New("no data or heartbeat from the server")

// watchdog cancels the session when nothing was read for --idle-timeout:
// heartbeats are SSE comments, which the go-sse client drops, so activity is
// observed on the response body itself (activityTransport).
func (t *tailer) watchdog(ctx context.Context, cancel context.CancelCauseFunc) (stop func()) {
	if t.flags.idleTimeout <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(max(t.flags.idleTimeout/4, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				if time.Since(time.Unix(0, t.lastRead.Load())) > t.flags.idleTimeout {
					cancel(errIdle)
					return
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// activityTransport records when response bytes were last read.
type activityTransport struct {
	base http.RoundTripper
	last *atomic.Int64
}

func (a *activityTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := a.base.RoundTrip(r)
	if err == nil {
		resp.Body = &activityBody{ReadCloser: resp.Body, last: a.last}
	}
	return resp, err
}

type activityBody struct {
	io.ReadCloser
	last *atomic.Int64
}

func (b *activityBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.last.Store(time.Now().UnixNano())
	}
	return n, err
}
