package dashboard

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"livedash/dashboard/apierr"
)

// assetServer serves the page from an fs.FS and nothing else, so that no
// path (../, encoded dots or slashes) reaches outside the embedded assets:
// only names that fs.ValidPath accepts, no escaped separators or dots, no
// directory listings, and never a redirect.
type assetServer struct {
	fsys  fs.FS
	cache bool // embedded files never change: hash each once

	mu    sync.Mutex
	files map[string]asset
}

type asset struct {
	body []byte
	etag string
}

func newAssetServer(fsys fs.FS, cache bool) *assetServer {
	return &assetServer{fsys: fsys, cache: cache, files: map[string]asset{}}
}

func (a *assetServer) serve(c echo.Context) error {
	req := c.Request()
	notFound := apierr.New(http.StatusNotFound, "not_found", "no such file")
	raw := strings.ToLower(req.URL.EscapedPath())
	if strings.Contains(raw, "%2f") || strings.Contains(raw, "%2e") || strings.Contains(raw, "%5c") || strings.Contains(raw, "%00") {
		return notFound
	}
	name := strings.TrimPrefix(req.URL.Path, "/")
	if name == "" {
		name = "index.html"
	}
	if strings.ContainsAny(name, "\\\x00") || !fs.ValidPath(name) {
		return notFound
	}
	f, err := a.load(name)
	if err != nil {
		return notFound
	}
	h := c.Response().Header()
	ctype := mime.TypeByExtension(path.Ext(name))
	if strings.HasSuffix(name, ".js") || strings.HasSuffix(name, ".mjs") {
		ctype = "text/javascript; charset=utf-8"
	}
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h.Set("Content-Type", ctype)
	h.Set("ETag", f.etag)
	// Files asked for with a version (?v=…) may be cached for good; names
	// alone carry no version, so everything else is revalidated by ETag (a
	// long-cached unversioned file would outlive an upgrade).
	if req.URL.Query().Has("v") {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(c.Response(), req, "", time.Time{}, bytes.NewReader(f.body))
	return nil
}

func (a *assetServer) load(name string) (asset, error) {
	if a.cache {
		a.mu.Lock()
		f, ok := a.files[name]
		a.mu.Unlock()
		if ok {
			return f, nil
		}
	}
	st, err := fs.Stat(a.fsys, name)
	if err != nil || st.IsDir() {
		return asset{}, fs.ErrNotExist
	}
	body, err := fs.ReadFile(a.fsys, name)
	if err != nil {
		return asset{}, err
	}
	sum := sha256.Sum256(body)
	f := asset{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	if a.cache {
		a.mu.Lock()
		a.files[name] = f
		a.mu.Unlock()
	}
	return f, nil
}
