package clientip

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// One /64 is one client: its addresses share every per-client count.
func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                     "192.0.2.7",
		"::ffff:192.0.2.7":              "192.0.2.7",
		"2001:db8:1:2:aaaa::1":          "2001:db8:1:2::",
		"2001:db8:1:2:ffff:ffff:ffff:1": "2001:db8:1:2::",
		"fe80::1%eth0":                  "fe80::",
		"::1":                           "::",
	} {
		if got := Key(netip.MustParseAddr(in)); got != netip.MustParseAddr(want) {
			t.Errorf("Key(%s) = %s, want %s", in, got, want)
		}
	}
	if Key(netip.MustParseAddr("2001:db8:1:2::1")) == Key(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Error("two /64s share a key")
	}
	if Key(netip.Addr{}).IsValid() {
		t.Error("the zero Addr has a key other than itself")
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:5555":          "192.0.2.1",
		"[2001:db8::1]:80":        "2001:db8::1",
		"[::ffff:10.0.0.1]:1":     "10.0.0.1",
		"198.51.100.9":            "198.51.100.9",
		"[2001:db8::2]":           "2001:db8::2",
		"@":                       "invalid IP",
		"/run/livedash.sock":      "invalid IP",
		"dash.example.com:443":    "invalid IP",
		"2001:db8::3":             "2001:db8::3",
		"  ":                      "invalid IP",
		"192.0.2.1:99999":         "invalid IP",
		"192.0.2.1:5555, 1.2.3.4": "invalid IP",
	} {
		if got := Parse(in).String(); got != want {
			t.Errorf("Parse(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestResolve(t *testing.T) {
	r := NewResolver([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")})
	for _, tt := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"127.0.0.1", nil, "127.0.0.1"},
		{"127.0.0.1", []string{"203.0.113.5"}, "203.0.113.5"},
		// The client's own claims (left of what the proxy appended) are ignored.
		{"127.0.0.1", []string{"6.6.6.6, 203.0.113.5"}, "203.0.113.5"},
		{"127.0.0.1", []string{"6.6.6.6", "203.0.113.5"}, "203.0.113.5"},
		// A chain of trusted proxies is walked.
		{"127.0.0.1", []string{"6.6.6.6, 203.0.113.5, 10.1.2.3"}, "203.0.113.5"},
		{"127.0.0.1", []string{"[2001:db8::7]:4711"}, "2001:db8::7"},
		// Not from a trusted proxy: the header means nothing.
		{"192.0.2.50", []string{"203.0.113.5"}, "192.0.2.50"},
		// Garbage stops at the last believed hop.
		{"127.0.0.1", []string{"203.0.113.5, garbage"}, "127.0.0.1"},
		{"127.0.0.1", []string{"garbage, 10.9.9.9"}, "10.9.9.9"},
		// Only proxies: the leftmost of them.
		{"127.0.0.1", []string{"10.0.0.2, 10.0.0.1"}, "10.0.0.2"},
		{"127.0.0.1", []string{" , "}, "127.0.0.1"},
	} {
		if got := r.Resolve(netip.MustParseAddr(tt.peer), tt.xff); got != netip.MustParseAddr(tt.want) {
			t.Errorf("Resolve(%s, %q) = %s, want %s", tt.peer, tt.xff, got, tt.want)
		}
	}
}

func TestOf(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	if got := Of(r); got != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("Of without context = %s", got)
	}
	r = r.WithContext(With(r.Context(), netip.MustParseAddr("203.0.113.9")))
	if got := Of(r); got != netip.MustParseAddr("203.0.113.9") {
		t.Errorf("Of with context = %s", got)
	}
}

func FuzzResolve(f *testing.F) {
	f.Add("127.0.0.1", "1.2.3.4, [::1]:80, x")
	r := NewResolver([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	f.Fuzz(func(t *testing.T, peer, xff string) {
		a := r.Resolve(Parse(peer), []string{xff})
		if a.IsValid() && a.Is4In6() {
			t.Fatalf("mapped address %s", a)
		}
	})
}
