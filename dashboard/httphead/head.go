// Package httphead reads and vets HTTP/1.1 request heads for the parts of
// the server that read requests off a connection themselves instead of
// through net/http: the stream's front door (dashboard) and the API's
// long-poll connections (dashboard/api). Both serve only the plainest
// requests this way and give everything else to net/http with its bytes
// unread, so the rule here is to refuse whatever is in doubt: a refused
// request costs a little speed, an accepted one that net/http would read
// differently would be a bug. FuzzPlainGet checks accepted heads against
// net/http's own reader.
package httphead

import (
	"bufio"
	"bytes"
	"errors"
	"net"
)

// ErrTooLarge is returned by Read for a head over its limit.
var ErrTooLarge = errors.New("request head over the limit")

// Read appends one request head (request line, header lines, the empty
// line) from br to b. started is called when the head's first byte has
// arrived but not the whole head, to bound the time the rest may take (the
// read-header timeout). Over max bytes it stops with ErrTooLarge and what it
// read so far (the caller hands that to net/http, which answers 431 or, a
// little over the limit, serves it: it allows some slack).
func Read(br *bufio.Reader, b []byte, max int, started func()) ([]byte, error) {
	if _, err := br.Peek(1); err != nil {
		return b, err
	}
	if rest, _ := br.Peek(br.Buffered()); !bytes.Contains(rest, []byte("\r\n\r\n")) {
		started() // the usual head arrives whole: no deadline to change
	}
	lineStart := 0
	for {
		line, err := br.ReadSlice('\n')
		if len(b)+len(line) > max {
			return append(b, line...), ErrTooLarge
		}
		b = append(b, line...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // the line goes on
		}
		if err != nil {
			return b, err
		}
		l := b[lineStart:]
		if len(l) == 2 && l[0] == '\r' || len(l) == 1 {
			return b, nil
		}
		lineStart = len(b)
	}
}

// PlainGet reports whether head is `GET <path>[?query] HTTP/1.1` with one
// valid Host, no body, and no header that changes how net/http would
// answer (Origin, Expect, Upgrade, Trailer, Transfer-Encoding, Connection
// other than keep-alive, a Content-Length other than 0), with nothing after
// the head's empty line. It returns the raw query and the first value of
// the header field (trimmed, as net/http's Header.Get; "" when absent or
// when field is ""). A query over maxQuery bytes is refused: the server
// answers 414 for it.
func PlainGet(head []byte, path string, maxQuery int, field string) (query, value string, ok bool) {
	i := bytes.IndexByte(head, '\n')
	if i < 1 || head[i-1] != '\r' {
		return "", "", false
	}
	line, rest := head[:i-1], head[i+1:]
	const method, proto = "GET ", " HTTP/1.1"
	if len(line) < len(method)+len(path)+len(proto) || string(line[:len(method)]) != method ||
		string(line[len(method):len(method)+len(path)]) != path || !bytes.HasSuffix(line, []byte(proto)) {
		return "", "", false
	}
	target := line[len(method)+len(path) : len(line)-len(proto)]
	if len(target) > 0 {
		if target[0] != '?' {
			return "", "", false
		}
		target = target[1:]
		if len(target) > maxQuery {
			return "", "", false
		}
		for _, c := range target {
			if c <= ' ' || c >= 0x7f || c == '#' {
				return "", "", false
			}
		}
	}
	hosts, found := 0, false
	for {
		j := bytes.IndexByte(rest, '\n')
		if j < 1 || rest[j-1] != '\r' {
			return "", "", false
		}
		h := rest[:j-1]
		rest = rest[j+1:]
		if len(h) == 0 {
			if len(rest) != 0 || hosts != 1 {
				return "", "", false
			}
			return string(target), value, true
		}
		colon := bytes.IndexByte(h, ':')
		if colon < 1 {
			return "", "", false
		}
		name, v := h[:colon], bytes.Trim(h[colon+1:], " \t")
		for _, c := range name {
			if !isTokenChar(c) {
				return "", "", false
			}
		}
		for _, c := range v {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return "", "", false
			}
		}
		switch {
		case equalFold(name, "Host"):
			hosts++
			if len(v) == 0 {
				return "", "", false
			}
			for _, c := range v {
				if !isHostChar(c) {
					return "", "", false
				}
			}
		case equalFold(name, "Content-Length"):
			if string(v) != "0" {
				return "", "", false
			}
		case equalFold(name, "Connection"):
			if !equalFold(v, "keep-alive") {
				return "", "", false
			}
		case equalFold(name, "Transfer-Encoding"), equalFold(name, "Expect"), equalFold(name, "Upgrade"),
			equalFold(name, "Origin"), equalFold(name, "Trailer"):
			return "", "", false
		case field != "" && !found && equalFold(name, field):
			value, found = string(v), true
		}
	}
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

func isHostChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_'
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// PrefixConn reads Prefix before the connection: a connection handed to
// net/http with the bytes already read from it.
type PrefixConn struct {
	net.Conn
	Prefix []byte
}

func (c *PrefixConn) Read(p []byte) (int, error) {
	if len(c.Prefix) > 0 {
		n := copy(p, c.Prefix)
		c.Prefix = c.Prefix[n:]
		if len(c.Prefix) == 0 {
			c.Prefix = nil // not held for the connection's life
		}
		return n, nil
	}
	return c.Conn.Read(p)
}
