package store

import (
	"errors"
	"math"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestIDRoundTrip(t *testing.T) {
	for _, id := range []ID{{0, 0}, {1, 1}, {0x9f2c41d07a3be511, 1042}, {math.MaxUint64, math.MaxUint64}} {
		s := id.String()
		if len(s) > MaxIDLen {
			t.Fatalf("%v: %d bytes", id, len(s))
		}
		got, err := ParseID(s)
		if err != nil || got != id {
			t.Fatalf("ParseID(%q) = %v, %v; want %v", s, got, err, id)
		}
	}
	if got := (ID{Epoch: 0x9f2c41d07a3be511, Seq: 1042}).String(); got != "9f2c41d07a3be511-1042" {
		t.Fatalf("String = %q", got)
	}
}

// Anything that is not exactly an ID is malformed: too long, control
// characters, invalid UTF-8, signs, spaces, leading zeros, overflow.
func TestParseIDRejects(t *testing.T) {
	bad := []string{
		"", "-1", "abc", "18446744073709551616", "9f2c41d07a3be511-", "9f2c41d07a3be511-18446744073709551616",
		"9f2c41d07a3be511--1", "9f2c41d07a3be511-+1", "9f2c41d07a3be511- 1", " 9f2c41d07a3be511-1",
		"9f2c41d07a3be511-1 ", "9f2c41d07a3be51-1", "9f2c41d07a3be5111-1", "9f2c41d07a3be51g-1",
		"9f2c41d07a3be511-01", "9f2c41d07a3be511-1\x00", "9f2c41d07a3be511-1\r\n", "9f2c41d07a3be511-\xff",
		"9f2c41d07a3be511-" + strings.Repeat("1", 48), "9f2c41d07a3be511_1", "9f2c41d07a3be511-1.5",
	}
	for _, s := range bad {
		if id, err := ParseID(s); !errors.Is(err, ErrMalformedID) {
			t.Errorf("ParseID(%q) = %v, %v; want ErrMalformedID", s, id, err)
		}
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"9f2c41d07a3be511-1042", "0000000000000000-0", "ffffffffffffffff-18446744073709551615", "x", "-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			return
		}
		if len(s) > MaxIDLen {
			t.Fatalf("accepted %d bytes", len(s))
		}
		if !strings.EqualFold(id.String(), s) {
			t.Fatalf("round trip %q → %q", s, id.String())
		}
	})
}
