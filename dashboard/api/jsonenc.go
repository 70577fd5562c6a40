package api

import (
	"math"

	"livedash/dashboard/ring"
)

// Responses are assembled by appending: frame bytes are copied verbatim and
// the few other values are encoded here. Strings are escaped like
// encoding/json with HTML escaping plus U+2028/U+2029, the same as the ring's
// frame encoder, so names and labels from outside (FAULTS row 16) are inert
// wherever the bytes end up.

// appendString appends s as a JSON string (see ring.AppendJSONString).
func appendString(b []byte, s string) []byte { return ring.AppendJSONString(b, s) }

// appendFloat appends v as encoding/json would; NaN and ±Inf, which JSON
// cannot carry, become null.
func appendFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return ring.AppendJSONFloat(b, v)
}

// appendLabels appends a label map as a JSON object with sorted keys.
func appendLabels(b []byte, labels map[string]string) []byte {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sortStrings(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, labels[k])
	}
	return append(b, '}')
}
