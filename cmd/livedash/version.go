package main

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by `make build` with -ldflags "-X main.buildVersion=… -X
// main.buildCommit=… -X main.buildDate=…". A plain `go build` or `go
// install` leaves them empty, and buildInfo reads what the Go toolchain
// recorded instead (the module version, and in a checkout the VCS revision
// and commit time).
var (
	buildVersion = ""
	buildCommit  = ""
	buildDate    = ""
)

// build describes this binary: its version ("devel" when nothing says
// more), the commit it was built from ("" when unknown; "-dirty" appended
// for a modified tree) and a date (RFC 3339, "" when unknown).
type build struct {
	Version, Commit, Date string
}

// buildInfo returns the stamped values, each missing one filled from the
// toolchain's build information.
func buildInfo() build {
	b := build{Version: buildVersion, Commit: buildCommit, Date: buildDate}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		if b.Version == "" {
			b.Version = "devel"
		}
		return b
	}
	if b.Version == "" {
		b.Version = info.Main.Version
		if b.Version == "" || b.Version == "(devel)" {
			b.Version = "devel"
		}
	}
	var rev, at string
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if b.Commit == "" && rev != "" {
		b.Commit = rev
		if dirty {
			b.Commit += "-dirty"
		}
	}
	if b.Date == "" {
		b.Date = at
	}
	return b
}

// version is the one-line description `livedash version` prints and the
// start-up log carries: "v1.2.0 (commit 0123456789ab, 2026-01-02T03:04:05Z,
// go1.26.0)", with the parts that are unknown left out.
func version() string {
	b := buildInfo()
	parts := make([]string, 0, 3)
	if b.Commit != "" {
		c, dirty := strings.CutSuffix(b.Commit, "-dirty")
		if len(c) > 12 {
			c = c[:12]
		}
		if dirty {
			c += "-dirty"
		}
		parts = append(parts, "commit "+c)
	}
	if b.Date != "" {
		parts = append(parts, b.Date)
	}
	parts = append(parts, runtime.Version())
	return b.Version + " (" + strings.Join(parts, ", ") + ")"
}
