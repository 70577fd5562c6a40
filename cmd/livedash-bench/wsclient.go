package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// wsHandshake is the rest of a WebSocket handshake request after the Host
// line (the server does not check the key's answer's use by the client).
func wsHandshake(deflate bool) string {
	var key [16]byte
	_, _ = rand.Read(key[:])
	h := "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key[:]) + "\r\n"
	if deflate {
		h += "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n"
	}
	return h
}

var errWSClosed = errors.New("websocket closed by the server")

// readWS reads server frames (never masked): text messages, possibly in
// several frames, possibly deflated; a close ends the connection. Each
// message is handled by wsMessage. Like read, it allocates nothing per
// message once its buffers have grown.
func (c *client) readWS(br *bufio.Reader) error {
	var hdr [8]byte
	compressed := false
	c.msg = c.msg[:0]
	for {
		if _, err := io.ReadFull(br, hdr[:2]); err != nil {
			return err
		}
		fin, rsv1, op := hdr[0]&0x80 != 0, hdr[0]&0x40 != 0, hdr[0]&0x0f
		if hdr[1]&0x80 != 0 {
			return errors.New("masked frame from the server")
		}
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(br, hdr[:2]); err != nil {
				return err
			}
			n = uint64(binary.BigEndian.Uint16(hdr[:2]))
		case 127:
			if _, err := io.ReadFull(br, hdr[:8]); err != nil {
				return err
			}
			n = binary.BigEndian.Uint64(hdr[:8])
		}
		if n > 64<<20 {
			return fmt.Errorf("frame of %d bytes", n)
		}
		switch op {
		case 0x8:
			return errWSClosed
		case 0x9, 0xa: // ping, pong: the server sends none; skip
			if _, err := br.Discard(int(n)); err != nil {
				return err
			}
			continue
		case 0x1, 0x2:
			c.msg = c.msg[:0]
			compressed = rsv1
		}
		start := len(c.msg)
		c.msg = slices.Grow(c.msg, int(n))[:start+int(n)]
		if _, err := io.ReadFull(br, c.msg[start:]); err != nil {
			return err
		}
		if !fin {
			continue
		}
		m := c.msg
		if compressed {
			var err error
			if m, err = c.inflate(m); err != nil {
				return err
			}
		}
		c.wsMessage(m)
		c.msg = c.msg[:0]
	}
}

// deflateTail ends a permessage-deflate message for the inflater.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

func (c *client) inflate(m []byte) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(m), bytes.NewReader(deflateTail))
	if c.inflater == nil {
		c.inflater = flate.NewReader(src)
	} else if err := c.inflater.(flate.Resetter).Reset(src, nil); err != nil {
		return nil, err
	}
	buf := bytes.NewBuffer(c.inflated[:0])
	_, err := io.Copy(buf, c.inflater)
	c.inflated = buf.Bytes()
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return c.inflated, nil
}

var (
	wsFrame = []byte(`{"event":"frame","data":{"id":"`)
	wsReset = []byte(`{"event":"reset","data":`)
	wsHello = []byte(`{"event":"hello","data":`)
	headKey = []byte(`"head":"`)
)

// wsMessage handles one message: events separated by "\n". The resume
// cursor is the last frame's id, a reset's head, or — without a cursor —
// the hello's head.
func (c *client) wsMessage(m []byte) {
	for len(m) > 0 {
		ev := m
		if i := bytes.IndexByte(m, '\n'); i >= 0 {
			ev, m = m[:i], m[i+1:]
		} else {
			m = nil
		}
		switch {
		case bytes.HasPrefix(ev, wsFrame):
			rest := ev[len(wsFrame):]
			id := rest[:max(bytes.IndexByte(rest, '"'), 0)]
			c.lastID = append(c.lastID[:0], id...)
			ts, ok := sampleTS(rest)
			c.frame(id, ts, ok)
		case bytes.HasPrefix(ev, wsReset):
			c.st.Load().resets.Add(1)
			c.has = false
			c.lastID = append(c.lastID[:0], quoted(ev, headKey)...)
		case bytes.HasPrefix(ev, wsHello) && len(c.lastID) == 0:
			c.lastID = append(c.lastID[:0], quoted(ev, headKey)...)
		}
	}
}

// quoted returns the string after key in b, up to its closing quote.
func quoted(b, key []byte) []byte {
	i := bytes.Index(b, key)
	if i < 0 {
		return nil
	}
	rest := b[i+len(key):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return nil
}
