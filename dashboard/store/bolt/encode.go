package bolt

import (
	"encoding/binary"
	"errors"
)

// Stored record layout (value of a frames-bucket key, the key being the
// big-endian seq):
//
//	[0]      format version (1)
//	[1:9]    ts, Unix ms, big-endian int64
//	[9]      topic length n (topics are at most 255 bytes)
//	[10:10+n] topic
//	[10+n:]  the frame's JSON, as sent on the wire
//
// The topic and time sit in front so filters and time seeks never parse JSON.
const recordVersion = 1

// recordOverhead is the record's size less its topic and JSON.
const recordOverhead = 10

var errBadRecord = errors.New("ring: bad stored record")

func appendRecord(b []byte, ts int64, topic string, frameJSON []byte) []byte {
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(ts))
	b = append(b, byte(len(topic)))
	b = append(b, topic...)
	return append(b, frameJSON...)
}

// parseRecord splits a stored record without copying; the slices alias v.
func parseRecord(v []byte) (ts int64, topic []byte, frameJSON []byte, err error) {
	if len(v) < 10 || v[0] != recordVersion {
		return 0, nil, nil, errBadRecord
	}
	ts = int64(binary.BigEndian.Uint64(v[1:9]))
	n := int(v[9])
	if len(v) < 10+n+2 {
		return 0, nil, nil, errBadRecord
	}
	return ts, v[10 : 10+n], v[10+n:], nil
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}
