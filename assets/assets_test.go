package assets

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"livedash/assets/browsertest"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFSHasThePage(t *testing.T) {
	fsys := FS()
	for _, name := range []string{"index.html", "app.css", "favicon.svg", "js/main.js", "js/client.js", "js/charts.js", "js/format.js", "js/worker.js"} {
		if _, err := fs.Stat(fsys, name); err != nil {
			t.Errorf("embedded page lacks %s: %v", name, err)
		}
	}
	if err := Check(fsys); err != nil {
		t.Fatalf("%v", err) // build.sh was not run: the browser tests would fail in confusing ways
	}
	if err := Check(fstestEmpty{}); err == nil || !strings.Contains(err.Error(), "build.sh") {
		t.Errorf("Check on an empty FS = %v, want an error naming build.sh", err)
	}
}

type fstestEmpty struct{}

func (fstestEmpty) Open(name string) (fs.File, error) { return nil, fs.ErrNotExist }

// TestNoUnsafeMarkup is a cheap static guard for what the browser tests prove:
// no inline script or style (CSP default-src 'self'), and no HTML sinks in
// our own code (labels are data, rendered with textContent).
func TestNoUnsafeMarkup(t *testing.T) {
	fsys := FS()
	html, err := fs.ReadFile(fsys, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]`), // a script element with a body
		regexp.MustCompile(`(?i)<style`),
		regexp.MustCompile(`(?i)\sstyle=`),
		regexp.MustCompile(`(?i)\son[a-z]+=`),
		regexp.MustCompile(`(?i)javascript:`),
	} {
		if m := re.Find(html); m != nil {
			t.Errorf("index.html: %q matches %v (CSP forbids inline script/style)", m, re)
		}
	}
	for _, tag := range regexp.MustCompile(`(?i)<script[^>]*>`).FindAll(html, -1) {
		if !bytes.Contains(tag, []byte(" src=")) {
			t.Errorf("index.html: %s has no src (inline scripts break under CSP)", tag)
		}
	}
	sinks := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\(\s*['"]style`)
	err = fs.WalkDir(fsys, "js", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if sinks.MatchString(line) && !strings.HasPrefix(strings.TrimSpace(line), "//") {
				t.Errorf("%s:%d uses an HTML/code sink: %s", p, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBudget: the page's own JS and CSS, gzipped file by file as a server
// would send them, stay within 30 KiB (uPlot not counted; index.html is
// logged apart). Long explanations live in assets/PAGE.md, not in the files
// every browser downloads.
func TestBudget(t *testing.T) {
	fsys := FS()
	code, html := 0, 0
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(p, "vendor/") {
			return err
		}
		ext := path.Ext(p)
		if ext != ".js" && ext != ".css" && ext != ".html" {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		t.Logf("%s: %d bytes, %d gzip", p, len(b), buf.Len())
		if ext == ".html" {
			html += buf.Len()
		} else {
			code += buf.Len()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("own JS+CSS: %d bytes gzip (budget %d); HTML %d", code, 30*1024, html)
	if code > 30*1024 {
		t.Errorf("own JS+CSS are %d bytes gzip, budget 30 KiB", code)
	}
}

// ---- headless Chromium -----------------------------------------------------

// newBrowser starts a fresh headless Chromium for tb, 1280×900, and returns
// the context of its first tab.
func newBrowser(tb testing.TB) context.Context {
	tb.Helper()
	return browsertest.New(tb, 1280, 900)
}

// TestClientUnit runs testdata/unit/unit.js in headless Chromium against the
// embedded page and a fake livedash that serves scripted streams.
func TestClientUnit(t *testing.T) {
	srv := httptest.NewServer(unitServer(t))
	t.Cleanup(srv.Close)
	ctx := newBrowser(t)
	check := watchConsole(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/test/unit.html")); err != nil {
		t.Fatal(err)
	}
	type results struct {
		Pass, Fail int
		Failures   []string
	}
	var res results
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := chromedp.Run(ctx, chromedp.Evaluate[*results](`window.__results || null`))
		if err != nil {
			t.Fatal(err)
		}
		if r != nil {
			res = *r
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("unit tests did not finish in 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, f := range res.Failures {
		t.Error(f)
	}
	t.Logf("client unit tests: %d passed, %d failed", res.Pass, res.Fail)
	if res.Pass == 0 {
		t.Error("no unit test ran")
	}
	check()
}

// watchConsole reports the tab's console errors and exceptions (see
// browsertest.WatchConsole).
func watchConsole(tb testing.TB, ctx context.Context) (check func()) {
	tb.Helper()
	return browsertest.WatchConsole(tb, ctx)
}

// unitServer serves the embedded page with the production CSP, the unit test
// page, and scripted fake endpoints under /fake/<scenario>/api/v1/.
func unitServer(tb testing.TB) http.Handler {
	mux := http.NewServeMux()
	static := http.FileServerFS(FS())
	unit := http.StripPrefix("/test/", http.FileServerFS(os.DirFS("testdata/unit")))
	csp := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", "default-src 'self'")
			h.ServeHTTP(w, r)
		})
	}
	mux.Handle("/", csp(static))
	mux.Handle("/test/", csp(unit))

	const ep = "0123456789abcdef"
	frame := func(w io.Writer, epoch string, seq int) {
		fmt.Fprintf(w, "id: %s-%d\nevent: frame\ndata: {\"id\":\"%s-%d\",\"topic\":\"cpu\",\"ts\":%d,\"samples\":[]}\n\n",
			epoch, seq, epoch, seq, time.Now().UnixMilli())
	}
	startSSE := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
	}
	after := func(r *http.Request) (string, int) {
		id := r.Header.Get("Last-Event-ID")
		if id == "" {
			id = r.URL.Query().Get("after")
		}
		e, s, _ := strings.Cut(id, "-")
		n, _ := strconv.Atoi(s)
		return e, n
	}
	// resume: five frames per connection after Last-Event-ID, then EOF.
	mux.HandleFunc("/fake/resume/api/v1/stream", func(w http.ResponseWriter, r *http.Request) {
		_, n := after(r)
		startSSE(w)
		fmt.Fprintf(w, "retry: 50\nevent: hello\ndata: {\"epoch\":%q,\"server_time\":%d,\"retry_ms\":50}\n\n", ep, time.Now().UnixMilli())
		for i := 1; i <= 5; i++ {
			frame(w, ep, n+i)
		}
	})
	// reset: an unknown epoch gets a reset to a new epoch at seq 100.
	const ep2 = "fedcba9876543210"
	mux.HandleFunc("/fake/reset/api/v1/stream", func(w http.ResponseWriter, r *http.Request) {
		e, n := after(r)
		startSSE(w)
		fmt.Fprintf(w, "event: hello\ndata: {\"epoch\":%q,\"retry_ms\":50}\n\n", ep2)
		if e != ep2 {
			fmt.Fprintf(w, "event: reset\ndata: {\"reason\":\"unknown_epoch\",\"requested\":\"x\",\"oldest\":\"%s-1\",\"head\":\"%s-100\"}\n\n", ep2, ep2)
			n = 100
		}
		for i := 1; i <= 3; i++ {
			frame(w, ep2, n+i)
		}
	})
	// buffered: the first two streams answer 200 and then hold every byte (a
	// buffering proxy); later ones stream. /frames serves the same sequence.
	var buffered atomic.Int32
	mux.HandleFunc("/fake/buffered/api/v1/stream", func(w http.ResponseWriter, r *http.Request) {
		_, n := after(r)
		startSSE(w)
		if buffered.Add(1) <= 2 {
			<-r.Context().Done()
			return
		}
		fmt.Fprintf(w, "event: hello\ndata: {\"epoch\":%q,\"retry_ms\":50}\n\n", ep)
		w.(http.Flusher).Flush()
		for {
			n++
			frame(w, ep, n)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	// silent: the first stream says hello, sends two frames and then nothing
	// (a dead link the TCP stack has not noticed); later streams send frames
	// and, between them, heartbeats.
	var silent atomic.Int32
	mux.HandleFunc("/fake/silent/api/v1/stream", func(w http.ResponseWriter, r *http.Request) {
		_, n := after(r)
		startSSE(w)
		fmt.Fprintf(w, "event: hello\ndata: {\"epoch\":%q,\"retry_ms\":50}\n\n", ep)
		first := silent.Add(1) == 1
		for i := 1; i <= 2; i++ {
			frame(w, ep, n+i)
		}
		n += 2
		w.(http.Flusher).Flush()
		if first {
			<-r.Context().Done()
			return
		}
		for {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(60 * time.Millisecond):
			}
			fmt.Fprintf(w, ": hb %s-%d %d\n\n", ep, n, time.Now().UnixMilli())
			if rand.IntN(3) == 0 {
				n++
				frame(w, ep, n)
			}
			w.(http.Flusher).Flush()
		}
	})
	// ws: every stream is held (a proxy buffering text/event-stream);
	// /api/v1/ws says hello, then sends two frames per message every 20 ms
	// after lastEventId, and answers each subscribe with a hello, keeping the
	// topics asked (GET /fake/ws/topics returns the last).
	mux.HandleFunc("/fake/ws/api/v1/stream", func(w http.ResponseWriter, r *http.Request) {
		startSSE(w)
		<-r.Context().Done()
	})
	var wsTopics atomic.Pointer[[]string]
	mux.HandleFunc("/fake/ws/topics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(wsTopics.Load())
	})
	mux.HandleFunc("/fake/ws/api/v1/ws", func(w http.ResponseWriter, r *http.Request) {
		_, n, _ := strings.Cut(r.URL.Query().Get("lastEventId"), "-")
		seq, _ := strconv.Atoi(n)
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		subs := make(chan []string, 4)
		go func() {
			defer close(subs)
			for {
				_, b, err := c.Read(context.Background())
				if err != nil {
					return
				}
				var m struct {
					Op     string   `json:"op"`
					Topics []string `json:"topics"`
				}
				if json.Unmarshal(b, &m) != nil || m.Op != "subscribe" {
					c.Close(websocket.StatusPolicyViolation, "bad message")
					return
				}
				subs <- m.Topics
			}
		}()
		send := func(msg string) bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return c.Write(ctx, websocket.MessageText, []byte(msg)) == nil
		}
		hello := func() bool {
			return send(fmt.Sprintf(`{"event":"hello","data":{"epoch":%q,"head":"%s-%d","retry_ms":50,"server_time":%d}}`,
				ep, ep, seq, time.Now().UnixMilli()))
		}
		ev := func(s int) string {
			return fmt.Sprintf(`{"event":"frame","data":{"id":"%s-%d","topic":"cpu","ts":%d,"samples":[]}}`, ep, s, time.Now().UnixMilli())
		}
		if !hello() {
			return
		}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case t, ok := <-subs:
				if !ok || !hello() {
					return
				}
				wsTopics.Store(&t)
			case <-tick.C:
				if !send(ev(seq+1) + "\n" + ev(seq+2)) {
					return
				}
				seq += 2
			}
		}
	})
	// buffered passes WebSocket upgrades but holds their bytes too: sockets
	// open and never say hello.
	mux.HandleFunc("/fake/buffered/api/v1/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		_, _, _ = c.Read(context.Background()) // until the client closes
	})
	mux.HandleFunc("/fake/ws/api/v1/frames", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no polling in this scenario", http.StatusInternalServerError)
	})
	mux.HandleFunc("/fake/buffered/api/v1/frames", func(w http.ResponseWriter, r *http.Request) {
		_, n := after(r)
		time.Sleep(100 * time.Millisecond)
		var b strings.Builder
		b.WriteString(`{"frames":[`)
		for i := 1; i <= 3; i++ {
			if i > 1 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"id":"%s-%d","topic":"cpu","ts":%d,"samples":[]}`, ep, n+i, time.Now().UnixMilli())
		}
		fmt.Fprintf(&b, `],"next":"%s-%d","head":"%s-%d","oldest":"%s-1","reset":null}`, ep, n+3, ep, n+3, ep)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, b.String())
	})
	return mux
}
