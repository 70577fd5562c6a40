package main

// Browser tests of the operator's dashboard (issue 17, the page's side):
// round ticks, memory up to the host's total, single pushed points drawn,
// legends that name metrics in natural order, thresholds that mark a panel,
// drag to zoom with "back to live", windows back to the retention, the host
// name, and a configured dashboard drawn exactly as configured. Screenshots
// at 1400×1000, 390×844 and in dark mode go to $ARTIFACTS_DIR (or a temp dir).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"go.yaml.in/yaml/v3"

	"livedash/assets/browsertest"
)

// viewDebug and panelDebug mirror a panel's debug() in assets/web/js/charts.js.
type viewDebug struct {
	X    []float64
	Axes []struct {
		Scale    string
		Min, Max float64
		Ticks    []string
	}
	Labels, Colors, Units []string
	BBox                  []float64
}

type panelDebug struct {
	ID, Title, Topic, Level, State string
	Points                         int
	Labels                         []string
	Idle                           []string
	Refs                           map[string]float64
	Views                          []viewDebug
}

type dashDebug struct {
	WindowSec  int
	Zoom       []float64
	Host       string
	Configured bool
	Order      []string
	Charts     map[string]panelDebug
}

func dashOf(tb testing.TB, ctx context.Context) dashDebug {
	tb.Helper()
	d, err := chromedp.Run(ctx, chromedp.Evaluate[dashDebug](`window.livedash.debug()`))
	if err != nil {
		tb.Fatalf("livedash.debug(): %v", err)
	}
	return d
}

const pushToken = "test-push-token-0123456789"

// pushSamples posts samples to topic on base with pushToken.
// pushSamples pushes one frame of samples to topic and returns its ID.
func pushSamples(tb testing.TB, base, topic string, samples ...map[string]any) (id string) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/push/"+topic, strings.NewReader(mustJSON(map[string]any{"samples": samples})))
	req.Header.Set("Authorization", "Bearer "+pushToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		tb.Fatalf("push %s: %s: %s", topic, resp.Status, b)
	}
	var ans struct{ ID string }
	if err := json.Unmarshal(b, &ans); err != nil || ans.ID == "" {
		tb.Fatalf("push %s: answer %s without an id (%v)", topic, b, err)
	}
	return ans.ID
}

func sample(name string, labels map[string]string, v float64) map[string]any {
	return map[string]any{"name": name, "labels": labels, "value": v}
}

// dashboardSite starts livedash (push token set, extraYAML added to its
// configuration) with dash's panels as the configuration's dashboard:
// section and its thresholds as the thresholds: section, and returns the
// URL to open and the server.
func dashboardSite(t *testing.T, extraYAML string, dash map[string]any) (site string, srv *testServer) {
	t.Helper()
	doc := map[string]any{}
	for k, v := range dash {
		if k == "thresholds" {
			doc[k] = v
			continue
		}
		if doc["dashboard"] == nil {
			doc["dashboard"] = map[string]any{}
		}
		doc["dashboard"].(map[string]any)[k] = v
	}
	y, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "livedash.yaml")
	if err := os.WriteFile(path, []byte("push:\n  token: "+pushToken+"\n"+extraYAML+string(y)), 0o600); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, "--config", path)
	return srv.URL, srv
}

// tickRe is a tick label: a number and its unit.
var tickRe = regexp.MustCompile(`^(-?\d+(?:\.\d+)?)\s?(.*)$`)

// checkRound: the tick labels of every y axis are multiples of one round
// step (1, 2 or 5 × 10^k of the unit shown; for time 15 and 30 s or min,
// 3, 6 and 12 h too) in one unit, and every time axis has three or more.
func checkRound(t *testing.T, d dashDebug, where string) {
	t.Helper()
	for id, c := range d.Charts {
		for vi, v := range c.Views {
			for _, a := range v.Axes {
				what := fmt.Sprintf("%s: panel %s view %d axis %s %q", where, id, vi, a.Scale, a.Ticks)
				if a.Scale == "x" {
					if len(a.Ticks) < 3 {
						t.Errorf("%s: fewer than three time labels", what)
					}
					continue
				}
				if slices.Contains(v.Units, "up") && slices.ContainsFunc(a.Ticks, func(s string) bool { return s == "up" || s == "down" }) {
					continue
				}
				if len(a.Ticks) < 2 {
					t.Errorf("%s: fewer than two ticks", what)
					continue
				}
				var nums []float64
				units := map[string]bool{}
				for _, s := range a.Ticks {
					m := tickRe.FindStringSubmatch(s)
					if m == nil {
						t.Errorf("%s: %q is not a number and a unit", what, s)
						continue
					}
					f, _ := strconv.ParseFloat(m[1], 64)
					nums = append(nums, f)
					units[m[2]] = true
				}
				if len(units) != 1 || len(nums) < 2 {
					t.Errorf("%s: not one unit", what)
					continue
				}
				step := nums[1] - nums[0]
				mant := step / math.Pow(10, math.Floor(math.Log10(step)+1e-9))
				ok := []float64{1, 2, 5}
				for u := range units {
					switch u {
					case "s", "min":
						ok = append(ok, 1.5, 3)
					case "h":
						ok = append(ok, 1.2, 3, 6)
					}
				}
				if !slices.ContainsFunc(ok, func(m float64) bool { return math.Abs(m-mant) < 1e-6 }) {
					t.Errorf("%s: step %g is not round", what, step)
				}
				for i, n := range nums {
					if math.Abs(n-nums[0]-float64(i)*step) > 1e-6*step || math.Abs(n/step-math.Round(n/step)) > 1e-6 {
						t.Errorf("%s: %g is not a multiple of the step %g", what, n, step)
					}
				}
			}
		}
	}
}

// seriesPixels counts the pixels of colour (#rrggbb) on the series layer of
// a panel's first view.
func seriesPixels(tb testing.TB, ctx context.Context, id, color string) int {
	tb.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`(() => {
		const v = window.livedash.panels().get(`+mustJSON(id)+`).views[0];
		const c = `+mustJSON(color)+`;
		const want = [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
		const px = v.ctx.getImageData(0, 0, v.cv.width, v.cv.height).data;
		let n = 0;
		for (let i = 0; i < px.length; i += 4) {
			if (px[i + 3] > 160 && want.every((w, k) => Math.abs(px[i + k] - w) < 40)) n++;
		}
		return n; })()`))
	if err != nil {
		tb.Fatalf("series pixels of %s: %v", id, err)
	}
	return n
}

// colorScheme emulates prefers-color-scheme: dark or light.
func colorScheme(ctx context.Context, scheme string) error {
	return chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	}))
}

// TestBrowserGlance: what an operator reads at a glance, at 1400×1000, in
// dark mode and on a 390×844 phone, with a pushed topic of one point whose
// value crosses its configured critical level.
func TestBrowserGlance(t *testing.T) {
	// Two HTTP probes, one failing: status codes, up/down and durations.
	target := func(code int) string {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }))
		t.Cleanup(ts.Close)
		return ts.URL
	}
	probes := fmt.Sprintf("collectors:\n  http:\n    interval: 1s\n    targets:\n    - {name: ok, url: %q}\n    - {name: failing, url: %q}\n", target(200), target(503))
	site, srv := dashboardSite(t, probes, map[string]any{"thresholds": []map[string]any{
		{"series": "cpu_usage_ratio", "labels": map[string]string{"cpu": "total"}, "warning": 0.8, "critical": 0.95},
		{"series": "glance_value", "warning": 1, "critical": 3},
	}})
	waitCatalog(t, srv.URL, defaultTopics)
	pushSamples(t, srv.URL, "glance", sample("glance_value", map[string]string{"job": "probe"}, 5))
	ctx := browsertest.New(t, 1400, 1000)
	check := watchConsole(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(site+"/")); err != nil {
		t.Fatal(err)
	}
	topics := append(slices.Clone(defaultTopics), "glance", "http")
	waitFor(t, "every chart drawn", 15*time.Second, func() bool {
		ok, err := chartsReady(ctx, topics)
		return err == nil && ok
	})
	time.Sleep(1500 * time.Millisecond) // a few live updates
	d := dashOf(t, ctx)

	// The host's name, in the header and the title.
	host, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById('host').textContent, document.title]`))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct{ Host string }
	getJSON(t, site+"/api/v1/dashboard", &dash)
	if dash.Host == "" || host[0] != dash.Host || !strings.Contains(host[1], dash.Host) {
		t.Errorf("host name: header %q, title %q; the server names %q", host[0], host[1], dash.Host)
	}

	checkRound(t, d, "1400 px")

	// Memory: used, buffers, cached and free stacked up to the total.
	var latest struct {
		Topics map[string]struct {
			Samples []struct {
				Name  string
				Value float64
			}
		}
	}
	getJSON(t, srv.URL+"/api/v1/latest?topics=memory", &latest)
	total := 0.0
	for _, s := range latest.Topics["memory"].Samples {
		if s.Name == "memory_total_bytes" {
			total = s.Value
		}
	}
	mem := d.Charts["memory"]
	if total <= 0 || len(mem.Views) == 0 {
		t.Fatalf("memory: total %v, views %d", total, len(mem.Views))
	}
	if top := mem.Views[0].Axes[1].Max; top > 1.1*total || top < 0.9*total {
		t.Errorf("memory axis tops at %.0f bytes; the host has %.0f", top, total)
	}
	if want := []string{"used", "buffers", "cached", "free"}; !slices.Equal(mem.Views[0].Labels, want) {
		t.Errorf("memory stack %q, want %q", mem.Views[0].Labels, want)
	}
	if got := d.Charts["load"].Labels; !slices.Equal(got, []string{"load1", "load5", "load15"}) {
		t.Errorf("load legend %q, want load1, load5, load15", got)
	}
	// Context switches and forks more than ten times apart in the window
	// (the largest values the chart holds) never share an axis (a flat line
	// of forks); closer than that, they do. How far apart they are depends
	// on the machine's load, and the page re-lays a chart's axes on the
	// update after they move, so the rule must hold within a few updates.
	var cs, fk float64
	var apart bool
	var wrong string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		mags, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]float64](`Object.fromEntries(window.livedash.panels().get('system').series.map((s) => [s.name, Math.max(0, ...s.col.filter((v) => v !== null).map(Math.abs))]))`))
		if err != nil {
			t.Fatal(err)
		}
		cs, fk = mags["system_context_switches_per_second"], mags["system_forks_per_second"]
		apart = cs > 10*fk || fk > 10*cs
		wrong = ""
		for _, v := range dashOf(t, ctx).Charts["system"].Views {
			if together := slices.Contains(v.Labels, "forks") && slices.Contains(v.Labels, "context_switches") && len(v.Axes) < 3; together == apart {
				wrong = fmt.Sprintf("context switches up to %.0f/s and forks up to %.0f/s, one axis %v: %+v", cs, fk, together, v)
			}
		}
		if wrong == "" || time.Now().After(deadline) {
			break
		}
	}
	if wrong != "" {
		t.Errorf("system: %s", wrong)
	}
	t.Logf("system: context switches up to %.0f/s, forks up to %.0f/s: separate axes %v", cs, fk, apart)
	// livedash's own CPU (a few %) is never drawn on its memory's axis: the
	// built-in panel puts each unit on a small chart of its own.
	for _, v := range d.Charts["self"].Views {
		if slices.Contains(v.Units, "ratio") && slices.Contains(v.Units, "bytes") && len(v.Axes) < 3 {
			t.Errorf("livedash itself: CPU and memory on one axis: %+v", v)
		}
	}
	if n := len(d.Charts["self"].Views); n < 2 {
		t.Errorf("livedash itself: %d chart(s), want CPU and memory apart", n)
	}
	for _, idle := range d.Charts["network"].Idle {
		if !regexp.MustCompile(`^(ifb|veth|docker|br-|virbr|vnet|tun|tap|dummy|vxlan|cali|flannel|cni|kube|wg|lo\b)`).MatchString(strings.Fields(idle)[len(strings.Fields(idle))-1]) {
			t.Errorf("network: %q hidden as idle", idle)
		}
	}

	// HTTP probes: status codes, up/down and durations never share an
	// axis; the status axis counts plainly (200, not "3.3 min").
	h := d.Charts["http"]
	statusAxis := false
	for _, v := range h.Views {
		units := map[string]bool{}
		for _, u := range v.Units {
			units[u] = true
		}
		for _, a := range v.Axes {
			if a.Scale != "x" && slices.ContainsFunc(a.Ticks, func(s string) bool { return s == "200" || s == "300" }) {
				statusAxis = true
			}
		}
		if len(units) > len(v.Axes)-1 {
			t.Errorf("http: units %v on %d y axes", v.Units, len(v.Axes)-1)
		}
	}
	if !statusAxis || !slices.ContainsFunc(h.Labels, func(s string) bool { return strings.Contains(s, `target="failing"`) }) {
		t.Errorf("http: no status axis counting plainly, or the failing target missing: %+v", h)
	}

	// The pushed point: drawn, its legend names metric and labels, and its
	// panel is marked critical.
	g := d.Charts["glance"]
	if want := []string{`glance_value{job="probe"}`}; !slices.Equal(g.Labels, want) {
		t.Errorf("pushed legend %q, want %q", g.Labels, want)
	}
	if len(g.Views) == 0 {
		t.Fatalf("pushed panel: no chart")
	}
	if n := seriesPixels(t, ctx, "glance", g.Views[0].Colors[0]); n < 6 {
		t.Errorf("a single pushed point: %d pixels of its colour in the plot", n)
	}
	legend, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.panel[data-id="glance"] .u-legend').textContent`))
	if !strings.Contains(legend, "5") {
		t.Errorf("pushed legend %q does not show the value", legend)
	}
	mark, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => { const p = document.querySelector('.panel[data-id="glance"]');
		const a = p.querySelector('.alert'); return [p.className, a.hidden ? '' : a.textContent, getComputedStyle(p).boxShadow]; })()`))
	if err != nil {
		t.Fatal(err)
	}
	if g.Level != "critical" || !strings.Contains(mark[0], "lvl-critical") || !strings.HasPrefix(mark[1], "critical") || mark[2] == "none" {
		t.Errorf("a value over its critical level: level %q, class %q, badge %q, outline %q", g.Level, mark[0], mark[1], mark[2])
	}
	screenshot(t, ctx, "livedash-1400.png")

	// Per-core CPU on its toggle: one busy line per core, in natural order.
	click(t, ctx, `document.querySelector('.panel[data-id="cpu"] .head button')`)
	var cores []string
	waitFor(t, "per-core CPU", 10*time.Second, func() bool {
		c := dashOf(t, ctx).Charts["cpu"]
		cores = c.Labels
		return c.State == "ready" && len(cores) > 0 && !slices.ContainsFunc(cores, func(s string) bool { return !regexp.MustCompile(`^cpu\d+$`).MatchString(s) })
	})
	if !slices.IsSortedFunc(cores, func(a, b string) int { x, _ := strconv.Atoi(a[3:]); y, _ := strconv.Atoi(b[3:]); return x - y }) {
		t.Errorf("per-core legend %q not in natural order", cores)
	}
	click(t, ctx, `document.querySelector('.panel[data-id="cpu"] .head button')`)
	waitFor(t, "CPU by mode again", 10*time.Second, func() bool {
		c := dashOf(t, ctx).Charts["cpu"]
		return c.State == "ready" && slices.Contains(c.Labels, "user")
	})
	// Idle interfaces come back on their toggle.
	if idle := d.Charts["network"].Idle; len(idle) > 0 {
		click(t, ctx, `document.querySelector('.panel[data-id="network"] .head button')`)
		waitFor(t, "idle interfaces shown", 5*time.Second, func() bool {
			return slices.Contains(dashOf(t, ctx).Charts["network"].Labels, idle[0])
		})
		click(t, ctx, `document.querySelector('.panel[data-id="network"] .head button')`)
	}

	if err := colorScheme(ctx, "dark"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`))
	if err != nil || bg != "rgb(18, 20, 23)" {
		t.Errorf("dark theme: body background %q (%v)", bg, err)
	}
	screenshot(t, ctx, "livedash-1400-dark.png")

	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	checkRound(t, dashOf(t, ctx), "390 px")
	w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil || w > 390 {
		t.Errorf("page is %d px wide on a 390 px phone (%v)", w, err)
	}
	screenshot(t, ctx, "livedash-390-dark.png")
	if err := colorScheme(ctx, "light"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	screenshot(t, ctx, "livedash-390.png")

	// A hidden panel drops its mark (nothing is drawn to back it); shown
	// again, it is marked again.
	marked := func() string {
		t.Helper()
		m, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const p = document.querySelector('.panel[data-id="glance"]');
			const a = p.querySelector('.alert'); return (p.className.includes('lvl-') ? 'outlined ' : '') + (a.hidden ? '' : a.textContent); })()`))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	hide := `window.livedash.panels().get('glance').hideBtn`
	click(t, ctx, hide)
	if m := marked(); m != "" {
		t.Errorf("hidden panel still marked: %q", m)
	}
	click(t, ctx, hide)
	// on screen: panels scrolled out of view are drawn when they come back
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { window.livedash.panels().get('glance').el.scrollIntoView(); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the panel marked again when shown", 10*time.Second, func() bool { return strings.HasPrefix(marked(), "outlined critical") })
	check()
}

// drag presses the left button at (x0, y), moves to x1 and releases.
func drag(ctx context.Context, x0, x1, y float64) error {
	ev := func(typ input.DispatchMouseEventType, x float64, buttons int64) chromedp.Action[chromedp.Void] {
		return chromedp.MouseEvent(typ, x, y, func(p *input.DispatchMouseEventParams) {
			p.Button, p.Buttons = input.MouseButtonLeft, buttons
			if typ != input.DispatchMouseEventTypeMouseMoved {
				p.ClickCount = 1
			}
		})
	}
	acts := []chromedp.Action[chromedp.Void]{ev(input.DispatchMouseEventTypeMouseMoved, x0, 0), ev(input.DispatchMouseEventTypeMousePressed, x0, 1)}
	for i := 1; i <= 8; i++ {
		acts = append(acts, ev(input.DispatchMouseEventTypeMouseMoved, x0+(x1-x0)*float64(i)/8, 1))
	}
	acts = append(acts, ev(input.DispatchMouseEventTypeMouseReleased, x1, 0))
	return chromedp.Do(ctx, acts...)
}

// TestBrowserZoom: dragging across one chart zooms every chart to that
// range and stops live drawing; "back to live" restores the window; windows
// beyond an hour, up to the retention, load from the query API.
func TestBrowserZoom(t *testing.T) {
	srv := startServer(t)
	waitCatalog(t, srv.URL, defaultTopics)
	// Tall enough for every chart to be on screen: charts scrolled out of
	// view are drawn when they come back.
	ctx := browsertest.New(t, 1400, 2400)
	check := watchConsole(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "charts", 10*time.Second, func() bool { ok, err := chartsReady(ctx, defaultTopics); return err == nil && ok })
	time.Sleep(3 * time.Second)
	before := dashOf(t, ctx)
	r, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => { const b = window.livedash.panels().get('cpu').views[0].u.over.getBoundingClientRect();
		return [b.left, b.top, b.width, b.height]; })()`))
	if err != nil {
		t.Fatal(err)
	}
	if err := drag(ctx, r[0]+0.5*r[2], r[0]+0.9*r[2], r[1]+r[3]/2); err != nil {
		t.Fatal(err)
	}
	var z dashDebug
	waitFor(t, "every chart zoomed", 10*time.Second, func() bool {
		z = dashOf(t, ctx)
		if len(z.Zoom) != 2 {
			return false
		}
		for _, c := range z.Charts {
			if c.State != "ready" || len(c.Views) == 0 || math.Abs(c.Views[0].X[0]-z.Zoom[0]) > 0.01 || math.Abs(c.Views[0].X[1]-z.Zoom[1]) > 0.01 {
				return false
			}
		}
		return true
	})
	cpu := before.Charts["cpu"].Views[0].X
	want0 := cpu[0] + 0.5*(cpu[1]-cpu[0])
	want1 := cpu[0] + 0.9*(cpu[1]-cpu[0])
	slack := (cpu[1] - cpu[0]) * 0.03
	if math.Abs(z.Zoom[0]-want0) > slack || math.Abs(z.Zoom[1]-want1) > slack {
		t.Errorf("zoomed to [%.1f, %.1f], dragged over [%.1f, %.1f]", z.Zoom[0], z.Zoom[1], want0, want1)
	}
	for id, c := range z.Charts {
		for _, v := range c.Views {
			if v.X[0] != z.Zoom[0] || v.X[1] != z.Zoom[1] {
				t.Errorf("%s: x range %v, zoom %v", id, v.X, z.Zoom)
			}
		}
	}
	live, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById('live').hidden ? 'hidden' : document.getElementById('live').textContent, document.getElementById('status').className]`))
	if err != nil || live[0] != "Back to live" || !strings.Contains(live[1], "zoomed") {
		t.Errorf("while zoomed: button %q, badge %q (%v)", live, live, err)
	}
	screenshot(t, ctx, "livedash-zoomed.png")
	time.Sleep(2 * time.Second)
	for id, c := range dashOf(t, ctx).Charts {
		if c.Views[0].X[1] != z.Zoom[1] {
			t.Errorf("%s: the zoomed range moved with live data: %v", id, c.Views[0].X)
		}
	}

	click(t, ctx, `document.getElementById('live')`)
	waitFor(t, "back to live on every chart", 10*time.Second, func() bool {
		d := dashOf(t, ctx)
		if d.Zoom != nil {
			return false
		}
		for id, c := range d.Charts {
			b := before.Charts[id].Views[0].X
			if c.State != "ready" || len(c.Views) == 0 || c.Views[0].X[1]-c.Views[0].X[0] != b[1]-b[0] || c.Views[0].X[1] < b[1]+2 {
				return false
			}
		}
		return true
	})
	if h, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('live').hidden`)); !h {
		t.Errorf("\"back to live\" still shown when live")
	}
	l0 := debugOf(t, ctx).Charts["cpu"].LastSeq
	waitFor(t, "live frames drawn again", 10*time.Second, func() bool { return debugOf(t, ctx).Charts["cpu"].LastSeq > l0 })

	// A window beyond an hour, offered up to the retention (24 h by default).
	opts, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#longer option')].map((o) => o.value).filter(Boolean)`))
	if err != nil || !slices.Contains(opts, "21600") || !slices.Contains(opts, "86400") || slices.Contains(opts, "172800") {
		t.Errorf("longer windows offered: %q (%v), want 6h and 24h but nothing beyond the 24 h retention", opts, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const s = document.getElementById('longer'); s.value = '21600'; s.dispatchEvent(new Event('change')); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a 6 hour window on every chart", 15*time.Second, func() bool {
		d := dashOf(t, ctx)
		for _, c := range d.Charts {
			if c.State != "ready" || len(c.Views) == 0 || c.Views[0].X[1]-c.Views[0].X[0] != 21600 {
				return false
			}
		}
		return d.WindowSec == 21600
	})
	checkRound(t, dashOf(t, ctx), "6 h window")
	check()
}

// TestBrowserDashboardConfig: a configured dashboard is drawn exactly as it
// names its panels, in its order, with its filters and units; topics it does
// not name get no panel (other_topics is false by default with panels).
func TestBrowserDashboardConfig(t *testing.T) {
	panels := []map[string]any{
		{"id": "mem", "title": "RAM", "topic": "memory", "series": []string{"memory_used_bytes", "memory_cached_bytes"}, "unit": "bytes", "stack": true, "axes": "auto"},
		{"id": "jobs", "title": "Job queue", "topic": "jobs", "series": []string{"jobs_queued"}, "include": map[string]string{"queue": "mail|sms"}, "exclude": map[string]string{"env": "te.*"}, "unit": "count", "stack": false, "axes": "auto"},
		{"id": "busy", "title": "CPU busy", "topic": "cpu", "series": []string{"cpu_usage_ratio"}, "include": map[string]string{"cpu": "total", "mode": "user|system"}, "unit": "ratio", "stack": true, "axes": "auto"},
		// memory_total_bytes is also the default memory threshold's "of":
		// listed, it is drawn.
		{"id": "total", "title": "RAM total", "topic": "memory", "series": []string{"memory_total_bytes"}, "unit": "bytes", "axes": "auto"},
	}
	site, srv := dashboardSite(t, "", map[string]any{
		"panels": panels,
		"thresholds": []map[string]any{
			{"series": "jobs_queued", "labels": map[string]string{"queue": "sms"}, "warning": 10, "critical": 40},
			{"series": "memory_used_bytes", "of": "memory_total_bytes", "warning": 0.9, "critical": 0.95},
		},
	})
	waitCatalog(t, srv.URL, defaultTopics)
	jobs := func(q, env string, v float64) map[string]any {
		return sample("jobs_queued", map[string]string{"queue": q, "env": env}, v)
	}
	pushSamples(t, srv.URL, "jobs", jobs("mail", "prod", 5), jobs("mailer", "prod", 5), jobs("sms", "test", 5), jobs("sms", "prod", 50))
	ctx, check := openPage(t, site+"/")
	waitFor(t, "the configured panels", 15*time.Second, func() bool {
		ok, err := chartsReady(ctx, []string{"mem", "jobs", "busy", "total"})
		return err == nil && ok
	})
	time.Sleep(2 * time.Second) // frames of every collector arrive: none may add a panel
	titles := func() []string {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('.panel h2')].map((h) => h.firstChild.textContent)`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got, want := titles(), []string{"RAM", "Job queue", "CPU busy", "RAM total"}; !slices.Equal(got, want) {
		t.Errorf("panels %q, want exactly %q", got, want)
	}
	d := dashOf(t, ctx)
	if !d.Configured || !slices.Equal(d.Order, []string{"mem", "jobs", "busy", "total"}) {
		t.Errorf("configured %v, order %q", d.Configured, d.Order)
	}
	if got, want := d.Charts["mem"].Labels, []string{"memory_used_bytes", "memory_cached_bytes"}; !slices.Equal(got, want) {
		t.Errorf("RAM series %q, want %q", got, want)
	}
	if got, want := d.Charts["jobs"].Labels, []string{`jobs_queued{env="prod", queue="mail"}`, `jobs_queued{env="prod", queue="sms"}`}; !slices.Equal(got, want) {
		t.Errorf("job queue series %q, want %q (include anchored, exclude applied)", got, want)
	}
	if got := d.Charts["total"].Labels; !slices.Equal(got, []string{"memory_total_bytes"}) {
		t.Errorf("RAM total series %q, want memory_total_bytes drawn", got)
	}
	busy := d.Charts["busy"].Labels
	if len(busy) != 2 || !slices.ContainsFunc(busy, func(s string) bool { return strings.Contains(s, `mode="user"`) }) {
		t.Errorf("CPU busy series %q, want user and system of the total", busy)
	}
	if lv := d.Charts["jobs"].Level; lv != "critical" {
		t.Errorf("job queue level %q, want critical (sms at 50, critical 40)", lv)
	}
	checkRound(t, d, "configured")
	screenshot(t, ctx, "livedash-configured.png")

	// A pushed topic no panel names: with panels configured (and
	// other_topics not set), no panel of its own either. Its frame is past
	// the page's cursor once the page's newest ID is past the push's.
	pushed := pushSamples(t, srv.URL, "extra", sample("extra_value", nil, 1))
	waitFor(t, "the page past the pushed frame", 10*time.Second, func() bool {
		return seqOf(debugOf(t, ctx).LastID) >= seqOf(pushed)
	})
	if got, want := titles(), []string{"RAM", "Job queue", "CPU busy", "RAM total"}; !slices.Equal(got, want) {
		t.Errorf("after a push of a new topic: panels %q, want exactly %q", got, want)
	}
	check()
}
