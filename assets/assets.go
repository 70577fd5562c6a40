// Package assets is the browser dashboard: index.html, plain ES modules and CSS
// under web/, embedded into the binary. uPlot, the one third-party file set, is
// fetched from npm (pinned by package-lock.json) and copied into web/vendor/,
// with its license, by build.sh (`go generate ./assets` runs it); web/vendor/ is
// not committed, so a fresh clone compiles (go:embed only needs the committed
// files). A binary built without that step serves, through Page, a page that
// says so and how to build a complete one, never a broken dashboard.
package assets

//go:generate bash build.sh

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

//go:embed web
var embedded embed.FS

// incomplete is the page served instead of the dashboard when the vendor
// files are missing.
//
//go:embed incomplete
var incomplete embed.FS

// VendorFiles are the files build.sh copies from node_modules: the two that
// index.html loads, and uPlot's license, which travels with them.
var VendorFiles = []string{"vendor/uPlot.iife.min.js", "vendor/uPlot.min.css", UPlotLicense}

// UPlotLicense is uPlot's license file in the page's file system.
const UPlotLicense = "vendor/uPlot.LICENSE"

// FS returns the embedded page, rooted at web/ (index.html at its top). It is
// read-only and safe for concurrent use.
func FS() fs.FS {
	sub, err := fs.Sub(embedded, "web")
	if err != nil { // only if the embed directive changed; fs.Sub fails on bad names only
		panic(err)
	}
	return sub
}

// Dir serves the page from disk for --dev, so edits show on reload without a
// rebuild. path is the web directory, normally "assets/web". Note that os.DirFS
// follows symlinks inside path; --dev is for a developer's own checkout only.
func Dir(path string) fs.FS { return os.DirFS(path) }

// Check reports the vendor files missing from fsys, naming the command that
// fixes it.
func Check(fsys fs.FS) error {
	var errs []error
	for _, name := range VendorFiles {
		if _, err := fs.Stat(fsys, name); err != nil {
			errs = append(errs, fmt.Errorf("assets: %s missing (run `go generate ./assets` or `bash assets/build.sh` before go build): %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Page returns the page to serve from fsys: fsys itself when it holds every
// vendor file, else, with Check's error, a page of its own (index.html only)
// that says the dashboard was not built into this binary and how to build
// it. The API works either way, so a missing build step does not stop the
// server; the caller logs the error and reports it in its status.
func Page(fsys fs.FS) (fs.FS, error) {
	if err := Check(fsys); err != nil {
		sub, serr := fs.Sub(incomplete, "incomplete")
		if serr != nil { // only if the embed directive changed
			panic(serr)
		}
		return sub, err
	}
	return fsys, nil
}

// Licenses is the notice served as /licenses.txt: livedash's license, then
// the license of every third-party file set that fsys holds (uPlot's, from
// the file build.sh copies with it). It names what it cannot find rather
// than failing.
func Licenses(fsys fs.FS) []byte {
	var b []byte
	b = append(b, `livedash
========

livedash is licensed under the Apache License, Version 2.0: the LICENSE
file of its source, and https://www.apache.org/licenses/LICENSE-2.0.
`...)
	if lic, err := fs.ReadFile(fsys, UPlotLicense); err == nil {
		b = append(b, `
uPlot
=====

The page includes uPlot (https://github.com/leeoniya/uPlot), under this
license:

`...)
		b = append(b, lic...)
		if len(lic) > 0 && lic[len(lic)-1] != '\n' {
			b = append(b, '\n')
		}
	}
	return b
}
