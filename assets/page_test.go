package assets

import (
	"bytes"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// A page without its vendor files is never served as the dashboard: Page
// answers with the notice, whose index.html says what is missing and the
// commands that build a complete binary, and which runs under the page's
// CSP (no script, no inline style).
func TestPageWithoutVendorFilesSaysHowToBuild(t *testing.T) {
	src := fstest.MapFS{
		"index.html": {Data: []byte("<!doctype html><script src=js/main.js></script>")},
		"js/main.js": {Data: []byte("uPlot()")},
	}
	page, err := Page(src)
	if err == nil || !strings.Contains(err.Error(), "go generate ./assets") {
		t.Fatalf("Page error = %v, want one naming go generate ./assets", err)
	}
	html, err := fs.ReadFile(page, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"no dashboard page", "uPlot", "go generate ./assets", "go build ./cmd/livedash", "make build", "/api/v1/latest"} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("the notice lacks %q", want)
		}
	}
	if regexp.MustCompile(`(?i)<script|<style|\sstyle=|\son[a-z]+=`).Match(html) {
		t.Errorf("the notice has script or inline style (the page's CSP forbids them):\n%s", html)
	}
	if _, err := fs.Stat(page, "js/main.js"); err == nil {
		t.Error("the notice's file system still serves the dashboard's scripts")
	}

	// With every vendor file the page is served as it is.
	for _, name := range VendorFiles {
		src[name] = &fstest.MapFile{Data: []byte("x")}
	}
	page, err = Page(src)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := fs.ReadFile(page, "js/main.js"); string(b) != "uPlot()" {
		t.Fatalf("complete page not served as is: %q", b)
	}
}

// The notice served as /licenses.txt carries uPlot's license exactly as npm
// ships it (build.sh copies it beside uPlot), for the pinned version, and
// names livedash's own license, which is the repository's LICENSE file.
func TestLicenses(t *testing.T) {
	want, err := os.ReadFile("node_modules/uplot/LICENSE")
	if err != nil {
		t.Fatalf("%v (run `bash assets/build.sh`)", err)
	}
	got := Licenses(FS())
	if !bytes.Contains(got, want) {
		t.Fatalf("Licenses lacks node_modules/uplot/LICENSE:\n%s", got)
	}
	if !bytes.Contains(got, []byte("Apache License, Version 2.0")) || !bytes.Contains(got, []byte("uPlot")) {
		t.Fatalf("Licenses:\n%s", got)
	}
	root, err := os.ReadFile("../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(root, []byte("Apache License\n                           Version 2.0, January 2004")) ||
		!bytes.Contains(root, []byte("END OF TERMS AND CONDITIONS")) {
		t.Fatal("LICENSE is not the full text of the Apache License 2.0")
	}
	// Without the vendor files (a plain go build) there is no uPlot to
	// credit, and the notice says only what livedash is under.
	if b := Licenses(fstest.MapFS{}); bytes.Contains(b, []byte("MIT")) || !bytes.Contains(b, []byte("Apache")) {
		t.Fatalf("Licenses of an empty page:\n%s", b)
	}
}
