package store

import (
	"errors"
	"strconv"
)

// MaxIDLen is the longest string that can be an ID.
const MaxIDLen = 64

// ErrMalformedID is returned by ParseID for anything that is not an ID.
var ErrMalformedID = errors.New("store: malformed id")

// ID names one frame: the store's epoch and the frame's sequence number.
// Seq is strictly increasing across all topics of one store; Seq 0 is "before
// the first frame" and is a valid cursor.
type ID struct {
	Epoch uint64
	Seq   uint64
}

// String renders the ID as "<16 hex digits>-<decimal seq>".
func (id ID) String() string {
	return string(id.AppendTo(make([]byte, 0, 40)))
}

// AppendTo appends the string form of id to b.
func (id ID) AppendTo(b []byte) []byte {
	const hexdigits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, hexdigits[(id.Epoch>>uint(shift))&0xf])
	}
	b = append(b, '-')
	return strconv.AppendUint(b, id.Seq, 10)
}

// ParseID parses the string form of an ID strictly: exactly 16 lower- or
// upper-case hex digits, '-', and a decimal uint64 without sign, spaces,
// leading zeros (other than "0" itself) or overflow; at most MaxIDLen bytes.
// Every other input returns ErrMalformedID. It never allocates.
func ParseID(s string) (ID, error) {
	if len(s) > MaxIDLen || len(s) < 18 || s[16] != '-' {
		return ID{}, ErrMalformedID
	}
	var id ID
	for i := range 16 {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return ID{}, ErrMalformedID
		}
		id.Epoch = id.Epoch<<4 | uint64(d)
	}
	digits := s[17:]
	if len(digits) > 1 && digits[0] == '0' {
		return ID{}, ErrMalformedID
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return ID{}, ErrMalformedID
		}
		d := uint64(c - '0')
		if id.Seq > (^uint64(0)-d)/10 {
			return ID{}, ErrMalformedID
		}
		id.Seq = id.Seq*10 + d
	}
	return id, nil
}
