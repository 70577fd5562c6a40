package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The shape of the code, checked on the import graph (test files aside):
// only the bbolt store imports bbolt, and only the wiring (this command)
// imports a store implementation — everything else uses the store
// interface; collectors and dashboard never import each other; config
// imports nothing of livedash's.
func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}:{{join .Imports " "}}`, "livedash/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	imports := map[string][]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, ":")
		imports[pkg] = strings.Fields(deps)
	}
	if len(imports) < 10 {
		t.Fatalf("go list found only %d packages:\n%s", len(imports), out)
	}
	isStoreImpl := func(p string) bool {
		return strings.HasPrefix(p, "livedash/dashboard/store/") && p != "livedash/dashboard/store/storetest"
	}
	for pkg, deps := range imports {
		for _, d := range deps {
			switch {
			case d == "go.etcd.io/bbolt" || strings.HasPrefix(d, "go.etcd.io/bbolt/"):
				if pkg != "livedash/dashboard/store/bolt" {
					t.Errorf("%s imports %s: only the bbolt store may", pkg, d)
				}
			case isStoreImpl(d) && !isStoreImpl(pkg):
				if pkg != "livedash/cmd/livedash" {
					t.Errorf("%s imports the store implementation %s: only the wiring in cmd/livedash may", pkg, d)
				}
			case strings.HasPrefix(pkg, "livedash/collectors") && strings.HasPrefix(d, "livedash/dashboard"),
				strings.HasPrefix(pkg, "livedash/dashboard") && strings.HasPrefix(d, "livedash/collectors"):
				t.Errorf("%s imports %s: collectors and dashboard never import each other", pkg, d)
			case strings.HasPrefix(pkg, "livedash/config") && strings.HasPrefix(d, "livedash/"):
				t.Errorf("%s imports %s: config imports nothing of livedash's", pkg, d)
			}
		}
	}
}
