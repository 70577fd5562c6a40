// Package assets is the browser dashboard: index.html, plain ES modules and CSS
// under web/, embedded into the binary. uPlot, the one third-party file set, is
// fetched from npm (pinned by package-lock.json) and copied into web/vendor/ by
// build.sh; web/vendor/ is not committed, so a fresh clone compiles (go:embed
// only needs the committed files) and Check reports the missing vendor files
// instead of a silently broken page.
package assets

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

//go:embed web
var embedded embed.FS

// VendorFiles are the files build.sh copies from node_modules; index.html loads
// them.
var VendorFiles = []string{"vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"}

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
// fixes it. Call it at start-up and log the error: the API works without the
// page, so a missing build step is not fatal for the server.
func Check(fsys fs.FS) error {
	var errs []error
	for _, name := range VendorFiles {
		if _, err := fs.Stat(fsys, name); err != nil {
			errs = append(errs, fmt.Errorf("assets: %s missing (run `bash assets/build.sh` before go build): %w", name, err))
		}
	}
	return errors.Join(errs...)
}
