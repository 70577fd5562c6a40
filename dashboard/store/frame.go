package store

import (
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Sample is one value of one series at the frame's time.
type Sample struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	Value  float64           `json:"value"`
}

// AppendFrameJSON encodes a frame exactly as every transport sends it:
//
//	{"id":"…","topic":"…","ts":…,"samples":[{"name":"…","labels":{…},"value":…}]}
//
// Label keys are sorted so equal frames encode equally. Samples whose value is
// NaN or ±Inf cannot be JSON numbers; they are left out and counted in skipped.
// Strings are escaped like encoding/json with HTML escaping, plus U+2028/9, so
// the bytes are safe to embed anywhere.
func AppendFrameJSON(b []byte, keys *[]string, id ID, topic string, ts int64, samples []Sample) (_ []byte, skipped int) {
	b = append(b, `{"id":"`...)
	b = id.AppendTo(b)
	b = append(b, `","topic":`...)
	b = AppendJSONString(b, topic)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"samples":[`...)
	first := true
	for i := range samples {
		s := &samples[i]
		if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
			skipped++
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"name":`...)
		b = AppendJSONString(b, s.Name)
		if len(s.Labels) > 0 {
			b = append(b, `,"labels":{`...)
			*keys = (*keys)[:0]
			for k := range s.Labels {
				*keys = append(*keys, k)
			}
			slices.Sort(*keys)
			for j, k := range *keys {
				if j > 0 {
					b = append(b, ',')
				}
				b = AppendJSONString(b, k)
				b = append(b, ':')
				b = AppendJSONString(b, s.Labels[k])
			}
			b = append(b, '}')
		}
		b = append(b, `,"value":`...)
		b = AppendJSONFloat(b, s.Value)
		b = append(b, '}')
	}
	return append(b, "]}"...), skipped
}

// AppendJSONFloat appends v the way encoding/json does (ES6 number
// formatting). The caller keeps NaN and ±Inf out: JSON has no such numbers.
func AppendJSONFloat(b []byte, v float64) []byte {
	abs := math.Abs(v)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, v, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hex = "0123456789abcdef"

// AppendJSONString appends s as a JSON string, escaped like encoding/json
// with HTML escaping plus U+2028/U+2029, so names and labels from outside
// are inert wherever the bytes end up. Invalid UTF-8 becomes
// U+FFFD. Every JSON string livedash writes by hand goes through here.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
