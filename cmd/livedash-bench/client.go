package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"time"
)

const maxLatMS = 120_000

// stats is shared by a group of clients; a fresh one is swapped in when a
// measurement window starts.
type stats struct {
	start      time.Time
	lat        [maxLatMS + 1]atomic.Int64 // latency histogram, 1 ms buckets
	frames     atomic.Int64
	gaps       atomic.Int64 // frames missing between two received IDs (not after a reset)
	dups       atomic.Int64 // frames received again or out of order
	resets     atomic.Int64
	errors     atomic.Int64 // connections that ended (EOF, error, non-200)
	reconnects atomic.Int64
	noTS       atomic.Int64
}

func newStats() *stats { return &stats{start: time.Now()} }

func (s *stats) percentile(p float64) time.Duration {
	var total int64
	for i := range s.lat {
		total += s.lat[i].Load()
	}
	if total == 0 {
		return 0
	}
	want := int64(p*float64(total)+0.5) - 1
	var seen int64
	for i := range s.lat {
		if seen += s.lat[i].Load(); seen > want {
			return time.Duration(i) * time.Millisecond
		}
	}
	return maxLatMS * time.Millisecond
}

func (s *stats) max() time.Duration {
	for i := len(s.lat) - 1; i >= 0; i-- {
		if s.lat[i].Load() > 0 {
			return time.Duration(i) * time.Millisecond
		}
	}
	return 0
}

// client is one SSE connection (re-dialled after it ends).
type client struct {
	b      *bench
	i      int
	st     *atomic.Pointer[stats]
	lastID []byte // raw id of the last event with an id (resume cursor)
	epoch  string // livedash ids: "<epoch>-<seq>"; the baseline: plain seq, epoch ""
	last   uint64
	has    bool // last is valid for gap counting

	seq      atomic.Uint64 // last frame seq, for the storm's catch-up check
	caughtAt atomic.Int64  // storm: unix nanos of the first frame ≥ target
	target   atomic.Uint64
	livedash atomic.Bool

	// The read buffers, kept across reconnects: a storm's 5,000 reconnects
	// would otherwise fault in fresh pages for every one of them. (stream
	// runs in one goroutine per client, one call at a time.)
	br, chunkBR *bufio.Reader

	// WebSocket: the message being read, the inflated one, the inflater.
	msg, inflated []byte
	deflate       bool // permessage-deflate was negotiated
	inflater      io.ReadCloser
}

var errStatus = errors.New("non-200 answer")

// stream dials, sends the request and reads events until the connection
// ends or ctx is done. connected is called once the 200 status was read.
func (c *client) stream(ctx context.Context, resume bool, connected func()) error {
	conn, err := c.b.dial(ctx, c.i) // TCP, or TLS with -tls (secure.go)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	req := "GET " + c.b.target.RequestURI() + " HTTP/1.1\r\nHost: " + c.b.target.Host + "\r\nAccept: text/event-stream\r\n"
	ws := c.b.o.transport == "ws"
	if ws {
		req = "GET " + c.b.target.RequestURI() + " HTTP/1.1\r\nHost: " + c.b.target.Host + wsHandshake(c.b.o.deflate)
	}
	if resume && len(c.lastID) > 0 {
		req += "Last-Event-ID: " + string(c.lastID) + "\r\n"
	}
	req += c.b.authLine() // -basic (secure.go)
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		return err
	}
	if c.br == nil {
		c.br = newReadBuffer()
	}
	br := c.br
	br.Reset(conn)
	defer br.Reset(nil) // drop the connection, keep the buffer
	status, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if want := map[bool]string{false: "HTTP/1.1 200", true: "HTTP/1.1 101"}[ws]; !strings.HasPrefix(status, want) {
		return fmt.Errorf("%w: %q", errStatus, strings.TrimSpace(status))
	}
	chunked := false
	c.deflate = false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Transfer-Encoding") && strings.Contains(strings.ToLower(v), "chunked") {
			chunked = true
		} else if ok && strings.EqualFold(k, "Sec-WebSocket-Extensions") && strings.Contains(v, "permessage-deflate") {
			c.deflate = true
		}
	}
	if connected != nil {
		connected()
	}
	if ws {
		return c.readWS(br)
	}
	if !chunked {
		return c.read(br)
	}
	if c.chunkBR == nil {
		c.chunkBR = newReadBuffer()
	}
	c.chunkBR.Reset(httputil.NewChunkedReader(br))
	defer c.chunkBR.Reset(nil)
	return c.read(c.chunkBR)
}

// readBufSize is the load client's read buffer: a catching-up stream takes
// what the kernel holds in few reads instead of one read(2) (and one window
// update) per 8 KiB. With 8 KiB, the reads of a 5,000-client storm were a
// fifth of the machine's samples. The cost is memory in the tool: 10,000
// clients hold 640 MiB, twice that on a chunked server (the baseline).
const readBufSize = 64 << 10

// newReadBuffer returns a reader of readBufSize with its pages already
// faulted in. A stream reads little until it catches up after a reconnect,
// so the first large reads of a storm would fault in most of the tool's
// buffers inside the measured window (perf stat: 80k page faults in one
// storm's window, 5k with this).
func newReadBuffer() *bufio.Reader {
	br := bufio.NewReaderSize(zeros{}, readBufSize)
	_, _ = br.Peek(readBufSize) // fills, so writes, the whole buffer
	br.Reset(nil)
	return br
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// read parses SSE: id, event and data fields; a blank line dispatches.
// Nothing is allocated per event (the load client shares the machine's
// cores with the server, and a reconnect storm hands it ~500k events in a
// second): the id is copied into a reused buffer, the event type is only
// compared, and numbers are parsed in place.
func (c *client) read(br *bufio.Reader) error {
	var id, long []byte
	var ts uint64
	hasID, hasData, hasTS := false, false, false
	typ := typeNone
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil {
			return err
		}
		// bytes.TrimRight with a cutset builds the set on every call: 2 % of
		// the machine's samples in a storm profile.
		for n := len(line); n > 0 && (line[n-1] == '\n' || line[n-1] == '\r'); n-- {
			line = line[:n-1]
		}
		switch {
		case len(line) == 0:
			// As EventSource does: the id becomes the resume cursor when
			// its event is dispatched, not when the id: line is read.
			if hasID && len(id) > 0 {
				c.lastID = append(c.lastID[:0], id...)
			}
			if typ == typeFrame || (typ == typeNone && hasData) {
				c.frame(id, ts, hasTS)
			} else if typ == typeReset {
				c.st.Load().resets.Add(1)
				c.has = false
			}
			id = id[:0]
			hasID, hasData, hasTS, typ = false, false, false, typeNone
		case line[0] == ':':
		case bytes.HasPrefix(line, []byte("id:")):
			id = append(id[:0], bytes.TrimPrefix(line[3:], []byte(" "))...)
			hasID = true
		case bytes.HasPrefix(line, []byte("event:")):
			switch string(bytes.TrimPrefix(line[6:], []byte(" "))) {
			case "frame":
				typ = typeFrame
			case "reset":
				typ = typeReset
			default:
				typ = typeOther
			}
		case bytes.HasPrefix(line, []byte("data:")):
			// Only the "ts" field is kept, parsed where the line lies in the
			// read buffer: no copy of the data. (One data line per event in
			// livedash and the baseline; with several, the last one's ts counts.)
			ts, hasTS = sampleTS(line[5:])
			hasData = true
		}
	}
}

const (
	typeNone = iota
	typeFrame
	typeReset
	typeOther
)

var tsKey = []byte(`"ts":`)

// frame records one frame event: gap and duplicate checks from its ID
// ("<epoch>-<seq>" from livedash, a bare seq from the baseline), latency from
// the "ts" of its data (hasTS false: the data had none).
func (c *client) frame(id []byte, ts uint64, hasTS bool) {
	st := c.st.Load()
	now := time.Now()
	epoch, seqText, isLD := bytes.Cut(id, []byte("-"))
	if !isLD {
		seqText, epoch = id, nil
	} else {
		c.livedash.Store(true)
	}
	if seq, ok := parseDigits(seqText); ok {
		if string(epoch) != c.epoch {
			c.epoch, c.has = string(epoch), false
		}
		if c.has {
			switch {
			case seq <= c.last:
				st.dups.Add(1)
			case seq > c.last+1:
				st.gaps.Add(int64(seq - c.last - 1))
			}
		}
		c.last, c.has = seq, true
		c.seq.Store(seq)
		if t := c.target.Load(); t > 0 && seq >= t && c.caughtAt.Load() == 0 {
			c.caughtAt.Store(now.UnixNano())
		}
	}
	st.frames.Add(1)
	if !hasTS {
		st.noTS.Add(1)
		return
	}
	ms := max(now.UnixMilli()-int64(ts), 0)
	st.lat[min(ms, maxLatMS)].Add(1)
}

// sampleTS returns the number after the first "ts": in one data line (with
// several data lines in an event, the last line's ts counts).
func sampleTS(data []byte) (uint64, bool) {
	i := bytes.Index(data, tsKey)
	if i < 0 {
		return 0, false
	}
	rest := data[i+len(tsKey):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	ts, ok := parseDigits(rest[:j])
	return ts, ok && ts <= math.MaxInt64
}

// parseDigits parses a non-empty run of at most 19 decimal digits.
func parseDigits(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
