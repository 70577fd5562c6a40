// Package clientip says who a request comes from, once, for every
// per-client limit and log line: the server's middleware resolves the
// client address (believing X-Forwarded-For only from a trusted proxy) and
// stores it in the request's context; transports, handlers and limits read
// it with Of and count it under Key.
package clientip

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
)

// Key is the address a client is counted under: an IPv4 address as is, an
// IPv6 address by its /64 — one subscriber's network, which holds billions
// of addresses that would otherwise each get a fresh quota. The zero Addr
// (a peer that is no IP address, such as a unix socket) is one shared key.
func Key(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return p.Addr()
	}
	return a
}

// Parse reads a peer address given as "host:port" (http.Request.RemoteAddr,
// net.Addr.String) or as a bare address, IPv4-mapped addresses unmapped.
// Anything else is the zero Addr.
func Parse(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

type ctxKey struct{}

// With returns ctx carrying a as the client address.
func With(ctx context.Context, a netip.Addr) context.Context {
	return context.WithValue(ctx, ctxKey{}, a)
}

// Of is the client address of r: the one the server's middleware stored in
// its context, else (outside the server, in tests of a bare handler) the
// TCP peer.
func Of(r *http.Request) netip.Addr {
	if a, ok := r.Context().Value(ctxKey{}).(netip.Addr); ok {
		return a
	}
	return Parse(r.RemoteAddr)
}

// Resolver finds the client address behind trusted reverse proxies.
type Resolver struct {
	trusted []netip.Prefix
}

// NewResolver returns a resolver believing X-Forwarded-For from the
// proxies in trusted only.
func NewResolver(trusted []netip.Prefix) *Resolver { return &Resolver{trusted: trusted} }

// Trusted reports whether a is a trusted proxy.
func (r *Resolver) Trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Resolve returns the client address of a request from peer carrying the
// X-Forwarded-For header values xff. A peer that is not a trusted proxy is
// the client, whatever it claims. From a trusted proxy the list is read
// from the right (the entry the nearest proxy appended) past every trusted
// proxy; the first other address is the client. Entries to its left were
// written by the client itself and are never believed. An entry that is
// not an address ends the walk at the last proxy that was believed.
func (r *Resolver) Resolve(peer netip.Addr, xff []string) netip.Addr {
	peer = peer.Unmap()
	if len(xff) == 0 || !r.Trusted(peer) {
		return peer
	}
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		rest := xff[i]
		for rest != "" {
			var item string
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				item, rest = rest[j+1:], rest[:j]
			} else {
				item, rest = rest, ""
			}
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			a := Parse(item)
			if !a.IsValid() {
				return client
			}
			client = a
			if !r.Trusted(a) {
				return a
			}
		}
	}
	return client
}
