package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"testing"
	"time"
)

// wsFrameBytes encodes one unmasked server frame.
func wsFrameBytes(fin, rsv1 bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	if rsv1 {
		b0 |= 0x40
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, byte(n))
	case n < 1<<16:
		out = append(out, 126, 0, 0)
		binary.BigEndian.PutUint16(out[2:], uint16(n))
	default:
		out = append(out, 127, 0, 0, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint64(out[2:], uint64(n))
	}
	return append(out, payload...)
}

// The WebSocket reader: events split by "\n", messages in several frames,
// deflated messages, the cursor from frames, resets and the hello; a close
// ends the connection.
func TestClientReadWS(t *testing.T) {
	ts := time.Now().Add(-50 * time.Millisecond).UnixMilli()
	frame := func(id string) string {
		return fmt.Sprintf(`{"event":"frame","data":{"id":%q,"topic":"t","ts":%d,"samples":[]}}`, id, ts)
	}
	hello := `{"event":"hello","data":{"epoch":"e","head":"e-0","oldest":"e-1","server_time":1,"retry_ms":2000}}`
	m1 := hello + "\n" + frame("e-1") + "\n" + frame("e-2")
	m2 := frame("e-5") + "\n" + `{"event":"hb","data":{"head":"e-5","server_time":1}}`
	m3 := `{"event":"reset","data":{"reason":"expired","requested":"x","oldest":"e-7","head":"e-8"}}` + "\n" + frame("e-9")
	var deflated bytes.Buffer
	fw, _ := flate.NewWriter(&deflated, flate.BestSpeed)
	_, _ = fw.Write([]byte(frame("e-10") + "\n" + frame("e-12")))
	_ = fw.Flush()
	z := bytes.TrimSuffix(deflated.Bytes(), []byte{0, 0, 0xff, 0xff})

	var in []byte
	in = append(in, wsFrameBytes(true, false, 1, []byte(m1))...)
	in = append(in, wsFrameBytes(false, false, 1, []byte(m2[:10]))...)
	in = append(in, wsFrameBytes(true, false, 0, []byte(m2[10:]))...)
	in = append(in, wsFrameBytes(true, false, 1, []byte(m3))...)
	in = append(in, wsFrameBytes(true, true, 1, z)...)
	in = append(in, wsFrameBytes(true, false, 8, []byte{3, 232})...)
	c := newTestClient()
	if err := c.readWS(bufio.NewReaderSize(&slowReader{s: string(in), n: 5}, 16)); err != errWSClosed {
		t.Fatalf("readWS: %v", err)
	}
	st := c.st.Load()
	if st.frames.Load() != 6 || st.gaps.Load() != 2+1 || st.resets.Load() != 1 || st.noTS.Load() != 0 {
		t.Fatalf("frames %d gaps %d resets %d noTS %d", st.frames.Load(), st.gaps.Load(), st.resets.Load(), st.noTS.Load())
	}
	if string(c.lastID) != "e-12" {
		t.Fatalf("lastID %q", c.lastID)
	}
	if p := st.percentile(.5); p < 50*time.Millisecond || p > 10*time.Second {
		t.Fatalf("latency %v", p)
	}
	// Without frames, the hello's head is the cursor.
	c = newTestClient()
	_ = c.readWS(bufio.NewReader(bytes.NewReader(wsFrameBytes(true, false, 1, []byte(hello)))))
	if string(c.lastID) != "e-0" {
		t.Fatalf("lastID after hello %q", c.lastID)
	}
}
