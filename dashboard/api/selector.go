package api

import (
	"strconv"
	"strings"
)

// Selector picks series by name and labels, in a subset of PromQL's syntax:
//
//	cpu_usage_ratio
//	cpu_usage_ratio{cpu="total",mode!="idle"}
//	{__name__="cpu_usage_ratio",cpu="0"}
//
// Matchers are = and != on exact values (no regular expressions: their cost
// is not bounded). A label that a series lacks has the value "". The zero
// Selector matches every series.
type Selector struct {
	Name     string
	Matchers []Matcher
}

// Matcher is one label condition.
type Matcher struct {
	Label string
	Value string
	Neg   bool
}

// Match reports whether a series matches.
func (s Selector) Match(name string, labels map[string]string) bool {
	if s.Name != "" && s.Name != name {
		return false
	}
	for _, m := range s.Matchers {
		v := labels[m.Label]
		if m.Label == "__name__" {
			v = name
		}
		if (v == m.Value) == m.Neg {
			return false
		}
	}
	return true
}

// ParseSelector parses a selector; msg is a human reason when it is invalid.
func ParseSelector(s string) (sel Selector, msg string) {
	if len(s) > maxSelectorLen {
		return sel, "longer than " + strconv.Itoa(maxSelectorLen) + " bytes"
	}
	i := 0
	for i < len(s) && isNameByte(s[i], i == 0, true) {
		i++
	}
	sel.Name = s[:i]
	if i == len(s) {
		if sel.Name == "" {
			return sel, "empty"
		}
		return sel, ""
	}
	if s[i] != '{' {
		return sel, "unexpected " + strconv.QuoteRune(rune(s[i])) + " at byte " + strconv.Itoa(i) + " (a name is [a-zA-Z_:][a-zA-Z0-9_:]*)"
	}
	i++
	for {
		i = skipSpace(s, i)
		if i < len(s) && s[i] == '}' {
			i++
			break
		}
		j := i
		for j < len(s) && isNameByte(s[j], j == i, false) {
			j++
		}
		if j == i {
			return sel, "expected a label name at byte " + strconv.Itoa(i)
		}
		m := Matcher{Label: s[i:j]}
		i = skipSpace(s, j)
		switch {
		case strings.HasPrefix(s[i:], "!="):
			m.Neg = true
			i += 2
		case strings.HasPrefix(s[i:], "="):
			i++
		default:
			return sel, "expected = or != after label " + m.Label
		}
		i = skipSpace(s, i)
		val, n, ok := unquoteValue(s[i:])
		if !ok {
			return sel, "expected a double-quoted value for label " + m.Label
		}
		m.Value = val
		sel.Matchers = append(sel.Matchers, m)
		if len(sel.Matchers) > 32 {
			return sel, "more than 32 matchers"
		}
		i = skipSpace(s, i+n)
		if i < len(s) && s[i] == ',' {
			i++
			continue
		}
		if i < len(s) && s[i] == '}' {
			i++
			break
		}
		return sel, "expected , or } at byte " + strconv.Itoa(i)
	}
	if i != len(s) {
		return sel, "unexpected text after } at byte " + strconv.Itoa(i)
	}
	return sel, ""
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func isNameByte(c byte, first, colon bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		return true
	case c == ':':
		return colon
	case c >= '0' && c <= '9':
		return !first
	}
	return false
}

// unquoteValue reads a double-quoted value with the escapes \\ \" \n at the
// start of s, returning the value and the bytes consumed.
func unquoteValue(s string) (string, int, bool) {
	if len(s) == 0 || s[0] != '"' {
		return "", 0, false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			return b.String(), i + 1, true
		case '\\':
			if i+1 == len(s) {
				return "", 0, false
			}
			i++
			switch s[i] {
			case '\\', '"':
				b.WriteByte(s[i])
			case 'n':
				b.WriteByte('\n')
			default:
				return "", 0, false
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}

// seriesKey renders the canonical key of a series, name{k="v",…} with label
// names sorted and values escaped like Prometheus (\\ \" \n). keys is scratch.
func appendSeriesKey(b []byte, name string, labels map[string]string, keys []string) ([]byte, []string) {
	b = append(b, name...)
	if len(labels) == 0 {
		return b, keys
	}
	keys = keys[:0]
	for k := range labels {
		keys = append(keys, k)
	}
	sortStrings(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, k...)
		b = append(b, '=', '"')
		v := labels[k]
		for j := 0; j < len(v); j++ {
			switch v[j] {
			case '\\':
				b = append(b, '\\', '\\')
			case '"':
				b = append(b, '\\', '"')
			case '\n':
				b = append(b, '\\', 'n')
			default:
				b = append(b, v[j])
			}
		}
		b = append(b, '"')
	}
	return append(b, '}'), keys
}

// sortStrings is an insertion sort: label sets are small, and it does not
// allocate.
func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
