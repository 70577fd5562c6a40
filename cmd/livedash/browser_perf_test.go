package main

// Browser performance measurement of the page's budget: eight charts at 1 Hz
// over a 15-minute window, main-thread time per update ≤ 4 ms, ≤ 10 % of one
// core while visible.
//
// The test fills a store with 16 minutes of history shaped like the default
// collectors' real frames, serves it, opens the page with ?window=900 in a
// viewport tall enough for every chart to be on screen, lets it settle, and
// then watches ~30 live updates. It logs:
//
//   - the first chart paint, ms after navigation started (the page's own
//     measure, with the 15-minute window to back-fill);
//   - per update (one collector tick: the animation frames that draw the
//     charts the tick made dirty, grouped from the page's render log, the
//     same numbers as its livedash-render performance measures): main-thread
//     ms of the page's drawing code, median / p90 / max;
//   - the main thread's whole busy time per second from the DevTools
//     Performance domain (TaskDuration: script, style, layout, paint, GC —
//     everything the tab's main thread did);
//   - CPU of all the browser's processes and of the renderer alone, from
//     /proc, as a share of one core.
//
//   - the page's own JS+CSS (index.html not counted) and uPlot's files,
//     each file gzipped as a server would send it.
//
// and ends with one line of every figure, "perf-summary: key=value …", the
// form scripts/pagebench.sh (make bench) prints.
//
// Timing thresholds are not asserted (shared machines); the report carries
// the numbers. What is asserted can fail for real: every chart keeps
// updating from live frames, no chart is re-created in steady state, the
// page never freezes while live (no task of a second or more: a whole 1 Hz
// update missed), no console error. Long tasks (over 50 ms) are wall time,
// and on a loaded machine an 8 ms task takes 60: in the full suite beside
// other work most updates can have one, so they are not asserted; every
// one is logged with its length, and their number and the longest are in
// the summary.
//
//	go test -count=1 -run TestBrowserPerf -v ./cmd/livedash/
//
// PERF_DEMO=1 adds the synthetic collector (16 more series, a ninth chart);
// PERF_ASSETS=dir serves the page from dir instead (compare two versions);
// PERF_TRACE=file.json also records a 10 s Chrome trace of the live page.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/performance"
	"github.com/chromedp/cdproto/tracing"
	"github.com/chromedp/chromedp"

	"livedash/assets"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

func TestBrowserPerf(t *testing.T) {
	if testing.Short() {
		t.Skip("browser performance measurement: not in -short")
	}
	demo := os.Getenv("PERF_DEMO") == "1"
	topics := slices.Clone(defaultTopics)
	var extra []string
	if demo {
		topics = append(topics, "synthetic")
		extra = []string{"--demo"}
	}
	const history = 16 * time.Minute
	store := prefilledStore(t, topics, extra, history)
	if dir := os.Getenv("PERF_ASSETS"); dir != "" {
		// Another copy of the page (say, an older commit's assets/web with
		// its vendor/ files), served from disk, for before/after numbers.
		extra = append(extra, "--dev", "--dev-dir", dir)
	}
	srv := startServer(t, append([]string{"--store", store}, extra...)...)
	waitCatalog(t, srv.URL, topics)

	ctx := newBrowser(t)
	check := watchConsole(t, ctx)
	// Tall enough that every chart is on screen: the page skips drawing
	// panels scrolled out of view, and the goal is about all of them.
	tall := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
			Width: 1280, Height: 2000, DeviceScaleFactor: 1,
		})
		return err
	})
	if err := chromedp.Do(ctx, tall, chromedp.Navigate(srv.URL+"/?window=900")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every chart with its 15 minute window", 20*time.Second, func() bool {
		ok, err := chartsReady(ctx, topics)
		if err != nil || !ok {
			return false
		}
		d := debugOf(t, ctx)
		for _, tp := range topics {
			// 2 s buckets over 15 minutes: ~450 points.
			if d.Charts[tp].Points < 400 || d.Charts[tp].State != "ready" {
				return false
			}
		}
		return d.WindowSec == 900
	})
	// The page back-fills 2 s buckets and puts live frames into buckets of
	// the same step (Panel.step), so ~450 points per series is its steady
	// state however long the tab is open. A page without that (PERF_ASSETS
	// of an older version) holds a point per live frame: after the whole
	// window, 900. Load that state for it, so both are measured at their
	// own steady state.
	firstPaint := math.NaN()
	if d := debugOf(t, ctx); d.FirstPaintMs != nil {
		firstPaint = *d.FirstPaintMs
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`Promise.all([...window.livedash.panels().values()].filter((p) => !('step' in p)).map(async (p) => {
		const q = new URLSearchParams({ topics: p.topic, after: '-900', before: '0', points: '900', group: 'avg' });
		const r = await fetch('/api/v1/query?' + q).then((res) => res.json());
		p.load(r);
	})).then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	vis, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('.panel')].filter((p) => {
		const r = p.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }).map((p) => p.querySelector('h2').firstChild.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(vis) < len(topics) {
		t.Errorf("only %d of %d panels fully on screen (%q): the measurement would skip charts", len(vis), len(topics), vis)
	}

	// Steady state: the first draws (chart creation) and a few live
	// updates are behind us.
	time.Sleep(5 * time.Second)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		window.__perf = { long: [] };
		new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__perf.long.push({ start: e.startTime, dur: e.duration }); })
		  .observe({ type: 'longtask' });
		return true; })()`)); err != nil {
		t.Fatal(err)
	}
	metrics := func() map[string]float64 {
		r, err := chromedp.Call(ctx, performance.GetMetrics, cdp.Empty{})
		if err != nil {
			t.Fatalf("Performance.getMetrics: %v", err)
		}
		m := map[string]float64{}
		for _, x := range r.Metrics {
			m[x.Name] = x.Value
		}
		return m
	}
	if _, err := chromedp.Call(ctx, performance.Enable, performance.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	browserPID := 0
	if p := chromedp.FromContext(ctx).Browser.Process(); p != nil {
		browserPID = p.Pid
	}
	d0 := debugOf(t, ctx)
	t0, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`performance.now()`))
	if err != nil {
		t.Fatal(err)
	}
	m0, cpu0, wall0 := metrics(), chromeCPU(browserPID), time.Now()

	const watch = 30 * time.Second
	time.Sleep(watch)

	m1, cpu1, wall := metrics(), chromeCPU(browserPID), time.Since(wall0)
	d1 := debugOf(t, ctx)
	type entry struct{ Start, Dur, Charts float64 }
	type perfOut struct {
		Renders []entry
		Long    []entry
		DPR     float64
		Now     float64
	}
	po, err := chromedp.Run(ctx, chromedp.Evaluate[perfOut](`(() => ({
		renders: (window.livedash.renderLog ? window.livedash.renderLog() : performance.getEntriesByName('livedash-render')
		  .map((e) => ({ start: e.startTime, dur: e.duration, charts: (e.detail && e.detail.charts) || 0 })))
		  .filter((e) => e.start >= `+strconv.FormatFloat(t0, 'f', 3, 64)+`),
		long: window.__perf.long.map((e) => ({ start: e.start, dur: e.dur })),
		dpr: devicePixelRatio, now: performance.now() }))()`))
	if err != nil {
		t.Fatal(err)
	}

	// One update = the animation frames that drew after one tick: renders
	// closer than 300 ms to the previous one belong to the same update.
	type update struct {
		busy, span float64
		frames     int
		charts     float64
	}
	var ups []update
	var perFrame []float64
	first, lastEnd := 0.0, math.Inf(-1)
	for _, e := range po.Renders {
		perFrame = append(perFrame, e.Dur)
		if e.Start-lastEnd > 300 {
			ups = append(ups, update{})
			first = e.Start
		}
		lastEnd = e.Start + e.Dur
		u := &ups[len(ups)-1]
		u.busy += e.Dur
		u.frames++
		u.charts += e.Charts
		u.span = lastEnd - first
	}
	busy := make([]float64, len(ups))
	spans := make([]float64, len(ups))
	var charts float64
	for i, u := range ups {
		busy[i], spans[i] = u.busy, u.span
		charts += u.charts
	}
	secs := wall.Seconds()
	task := (m1["TaskDuration"] - m0["TaskDuration"]) * 1000 / secs
	script := (m1["ScriptDuration"] - m0["ScriptDuration"]) * 1000 / secs
	layout := (m1["LayoutDuration"] + m1["RecalcStyleDuration"] - m0["LayoutDuration"] - m0["RecalcStyleDuration"]) * 1000 / secs
	t.Logf("perf: %d charts, window %d s, %d points in the cpu chart, devicePixelRatio %g, %d panels on screen", len(d1.Charts), d1.WindowSec, d1.Charts["cpu"].Points, po.DPR, len(vis))
	if len(ups) > 0 {
		t.Logf("perf: %d updates in %.0f s, %.1f charts drawn per update, %.1f animation frames per update", len(ups), secs, charts/float64(len(ups)), float64(len(po.Renders))/float64(len(ups)))
		t.Logf("perf: main-thread render time per update: median %.2f ms, p90 %.2f ms, max %.2f ms (spread over median %.1f ms wall)", pct(busy, 50), pct(busy, 90), pct(busy, 100), pct(spans, 50))
		t.Logf("perf: per animation frame: median %.2f ms, p90 %.2f ms, max %.2f ms", pct(perFrame, 50), pct(perFrame, 90), pct(perFrame, 100))
	}
	t.Logf("perf: main thread busy (DevTools TaskDuration) %.2f ms per second = %.1f %% of one core (script %.2f ms/s, style+layout %.2f ms/s)", task, task/10, script, layout)
	if cpu0.ok && cpu1.ok {
		t.Logf("perf: chromium CPU (/proc, all processes) %.1f %% of one core; renderer %.1f %%, gpu %.1f %%, browser %.1f %%",
			(cpu1.all-cpu0.all)/secs*100, (cpu1.renderer-cpu0.renderer)/secs*100, (cpu1.gpu-cpu0.gpu)/secs*100, (cpu1.browser-cpu0.browser)/secs*100)
		t.Logf("perf: renderer main thread CPU time (/proc) %.2f ms per second (per 1 Hz update)", (cpu1.rendererMain-cpu0.rendererMain)/secs*1000)
	}

	// The series layer is retained and redrawn in strips: after the watch
	// it must hold what one full draw of the same data draws.
	type layerCheck struct {
		Topic                                string
		Diff, Cols, Pixels, Draws, FullDraws int
		At                                   string
	}
	lcs, err := chromedp.Run(ctx, chromedp.Evaluate[[]*layerCheck](layerCheckJS))
	if err != nil {
		t.Fatal(err)
	}
	// A strip drawn on its own can blend a line's edge pixels a little
	// differently from one full draw (anti-aliasing at the strip's border,
	// one or two columns wide; where the borders fall depends on how ticks
	// were grouped into draws, so on the machine's load): a few such columns
	// are logged. A layer that lost or misplaced a strip differs in
	// hundreds of pixels over the strip's width.
	const edgeCols, edgePixels = 6, 48
	for _, c := range lcs {
		t.Logf("perf: %s series layer: %d incremental draws since the last full one (%d full in all), %d of %d pixels differ from a full draw", c.Topic, c.Draws, c.FullDraws, c.Diff, c.Pixels)
		switch {
		case c.Cols > edgeCols || c.Diff > edgePixels:
			t.Errorf("%s: the retained series layer differs from a full draw in %d pixels of %d columns: %s", c.Topic, c.Diff, c.Cols, c.At)
		case c.Diff > 0:
			t.Logf("perf: %s: %d edge pixels in %d columns differ (x, y, layer RGBA, full draw RGBA): %s", c.Topic, c.Diff, c.Cols, c.At)
		}
	}

	// What must hold, whatever the machine's speed.
	if len(ups) < 20 {
		t.Errorf("only %d updates drawn in %.0f s of 1 Hz frames", len(ups), secs)
	}
	for _, tp := range topics {
		c0, c1 := d0.Charts[tp], d1.Charts[tp]
		if c1.LastX == nil || c0.LastX == nil || *c1.LastX-*c0.LastX < watch.Seconds()/2 {
			t.Errorf("%s: chart did not keep up with live frames (last x %v → %v)", tp, c0.LastX, c1.LastX)
		}
		if c1.State != "ready" || c1.Points < 400 {
			t.Errorf("%s: state %s with %d points, want a ready 15 minute window", tp, c1.State, c1.Points)
		}
	}
	if d1.Builds != d0.Builds {
		t.Errorf("charts re-created in steady state: builds %d → %d", d0.Builds, d1.Builds)
	}
	// Long tasks are wall time: on a loaded machine an 8 ms task can take
	// 60. A frozen page (a task of a second or more: a whole update
	// missed) fails; the rest is logged and counted in the summary.
	long, longest := 0, 0.0
	for _, l := range po.Long {
		if l.Start < t0 {
			continue
		}
		long++
		longest = max(longest, l.Dur)
		t.Logf("perf: long task of %.0f ms at %.0f ms", l.Dur, l.Start)
		if l.Dur >= 1000 {
			t.Errorf("long task of %.0f ms while live: the page froze for a whole update", l.Dur)
		}
	}
	own, uplot := pageSizes(t, os.Getenv("PERF_ASSETS"))
	t.Logf("perf: the page's own JS+CSS %d B gzip (index.html not counted), uPlot %d B gzip", own, uplot)
	cpuPct := math.NaN()
	if cpu0.ok && cpu1.ok {
		cpuPct = (cpu1.all - cpu0.all) / secs * 100
	}
	t.Logf("perf-summary: first_chart_paint_ms=%.0f charts=%d window_s=%d updates=%d draw_ms_per_update_p50=%.2f draw_ms_per_update_p90=%.2f draw_ms_per_update_max=%.2f main_thread_busy_pct=%.1f chromium_cpu_pct=%.1f long_tasks_over_50ms=%d longest_task_ms=%.0f own_js_css_gzip_bytes=%d uplot_gzip_bytes=%d",
		firstPaint, len(d1.Charts), d1.WindowSec, len(ups), pct(busy, 50), pct(busy, 90), pct(busy, 100), task/10, cpuPct, long, longest, own, uplot)
	if out := os.Getenv("PERF_TRACE"); out != "" {
		recordTrace(t, ctx, out, 10*time.Second)
	}
	screenshot(t, ctx, "livedash-perf.png")
	check()
}

// pageSizes returns the gzipped size of the page's own JS and CSS (files
// outside vendor/; index.html not counted) and of uPlot's files (vendor/),
// each file compressed on its own at the best level, as a server sends it.
// dir is the page's directory (PERF_ASSETS); "" is the embedded page.
func pageSizes(tb testing.TB, dir string) (own, uplot int) {
	tb.Helper()
	fsys := assets.FS()
	if dir != "" {
		fsys = os.DirFS(dir)
	}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ext := path.Ext(p); ext != ".js" && ext != ".css" {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(b)
		_ = zw.Close()
		if strings.HasPrefix(p, "vendor/") {
			uplot += buf.Len()
		} else {
			own += buf.Len()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if uplot == 0 {
		tb.Fatal("no vendor/ files: run `bash assets/build.sh` (make assets)")
	}
	return own, uplot
}

// layerCheckJS compares every view's retained series layer (View.drawLayer
// in assets/web/js/charts.js) with a full draw of the same data at the same
// x offset (View.paint), pixel by pixel, colours premultiplied by alpha.
const layerCheckJS = `[...window.livedash.panels().values()].flatMap((p) => {
	if (p.dirty) p.render();
	return (p.views || []).map((v, k) => {
		const u = v.u;
		if (!u || !v.lay || !v.cv) return null;
		const { width: W, height: H } = u.bbox;
		const c = document.createElement('canvas');
		c.width = W; c.height = H;
		const ctx = c.getContext('2d');
		ctx.save();
		v.paint(ctx, u, v.lay.B, v.lay.kx, 0, v.lay.dots);
		ctx.restore();
		const a = v.ctx.getImageData(0, 0, W, H).data;
		const b = ctx.getImageData(0, 0, W, H).data;
		let diff = 0;
		const at = [];
		const cols = new Set();
		for (let i = 0; i < a.length; i += 4) {
			const d = (j) => Math.abs(a[j] * a[i + 3] - b[j] * b[i + 3]) / 255;
			if (d(i) > 8 || d(i + 1) > 8 || d(i + 2) > 8 || Math.abs(a[i + 3] - b[i + 3]) > 8) {
				diff++;
				cols.add((i / 4) % W);
				if (at.length < 12) at.push([(i / 4) % W, Math.floor(i / 4 / W), a[i], a[i + 1], a[i + 2], a[i + 3], b[i], b[i + 1], b[i + 2], b[i + 3]]);
			}
		}
		return { topic: p.id + (k ? '/' + k : ''), diff, cols: cols.size, pixels: W * H, draws: v.lay.draws, fullDraws: v.lay.full, at: at.length ? JSON.stringify(at) : '' };
	}).filter(Boolean);
})`

// recordTrace writes a Chrome trace (open it in DevTools' Performance panel
// or ui.perfetto.dev) of d of the live page to path.
func recordTrace(tb testing.TB, ctx context.Context, path string, d time.Duration) {
	tb.Helper()
	tg := chromedp.FromContext(ctx).Target
	data, stopData := tg.Subscribe("Tracing.dataCollected")
	defer stopData()
	done, stopDone := tg.Subscribe("Tracing.tracingComplete")
	defer stopDone()
	_, err := chromedp.Call(ctx, tracing.Start, tracing.StartParams{
		TransferMode: tracing.StartTransferModeReportEvents,
		TraceConfig: &tracing.TraceConfig{IncludedCategories: []string{
			"devtools.timeline", "disabled-by-default-devtools.timeline", "disabled-by-default-devtools.timeline.frame",
			"v8.execute", "blink.user_timing", "toplevel", "cc", "gpu", "disabled-by-default-v8.cpu_profiler",
		}, EnableSampling: true},
	})
	if err != nil {
		tb.Errorf("Tracing.start: %v", err)
		return
	}
	time.Sleep(d)
	if _, err := chromedp.Call(ctx, tracing.End, cdp.Empty{}); err != nil {
		tb.Errorf("Tracing.end: %v", err)
		return
	}
	var events []json.RawMessage
	timeout := time.After(30 * time.Second)
	for {
		select {
		case raw := <-data:
			var ev struct{ Value []json.RawMessage }
			if err := json.Unmarshal(raw, &ev); err == nil {
				events = append(events, ev.Value...)
			}
			continue
		case <-done:
		case <-timeout:
			tb.Errorf("trace: no tracingComplete")
		}
		break
	}
	for len(data) > 0 { // anything delivered before the completion event
		var ev struct{ Value []json.RawMessage }
		if err := json.Unmarshal(<-data, &ev); err == nil {
			events = append(events, ev.Value...)
		}
	}
	b, _ := json.Marshal(map[string]any{"traceEvents": events})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		tb.Errorf("trace: %v", err)
		return
	}
	tb.Logf("trace: %d events in %s", len(events), path)
}

// pct is the p-th percentile (nearest rank) of xs.
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// prefilledStore returns a store path holding `history` of 1 Hz frames of
// topics, ending now, shaped like the collectors' own frames: a first server
// runs the collectors until each topic has a frame, and its newest frames
// are the templates (same series, labels, magnitudes; values wander).
func prefilledStore(tb testing.TB, topics, args []string, history time.Duration) string {
	tb.Helper()
	probe := startServer(tb, args...)
	waitCatalog(tb, probe.URL, topics)
	var latest struct {
		Topics map[string]struct{ Samples []store.Sample }
	}
	waitFor(tb, "a frame with samples of every topic", 15*time.Second, func() bool {
		getJSON(tb, probe.URL+"/api/v1/latest", &latest)
		for _, tp := range topics {
			if len(latest.Topics[tp].Samples) == 0 {
				return false
			}
		}
		return true
	})
	if err := probe.Stop(); err != nil {
		tb.Fatalf("stop probe server: %v", err)
	}

	path := filepath.Join(tb.TempDir(), "history.db")
	st, err := bolt.Open(bolt.Options{Path: path, NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(6, 6))
	n := int(history / time.Second)
	end := time.Now().Add(-time.Second).Truncate(time.Second)
	var batches []store.Batch
	for i := n - 1; i >= 0; i-- {
		at := end.Add(-time.Duration(i) * time.Second)
		for _, tp := range topics {
			tmpl := latest.Topics[tp].Samples
			ss := make([]store.Sample, len(tmpl))
			for k, s := range tmpl {
				v := s.Value
				if v == 0 {
					v = 1
				}
				w := 1 + 0.3*math.Sin(float64(i)/(30+float64(k%5)*17)+float64(k)) + 0.05*rng.NormFloat64()
				if strings.HasSuffix(s.Name, "_ratio") {
					w = min(w, 1/max(v, 1e-9)) // ratios stay ≤ 1
				}
				ss[k] = store.Sample{Name: s.Name, Labels: s.Labels, Value: max(0, v*w)}
			}
			batches = append(batches, store.Batch{Topic: tp, Time: at, Samples: ss})
		}
		if len(batches) >= 600 || i == 0 {
			if _, err := st.Append(batches); err != nil {
				tb.Fatalf("prefill: %v", err)
			}
			batches = batches[:0]
		}
	}
	return path
}

// cpuTimes are CPU seconds used by a browser's process tree.
type cpuTimes struct {
	ok                          bool
	all, renderer, gpu, browser float64
	rendererMain                float64 // the renderers' main threads (tid = pid)
}

// chromeCPU sums utime+stime of the browser process and its descendants,
// split by Chromium's --type= (renderer, gpu-process; browser = no type).
func chromeCPU(root int) cpuTimes {
	if root <= 0 {
		return cpuTimes{}
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return cpuTimes{}
	}
	type proc struct {
		ppid int
		cpu  float64
	}
	procs := map[int]proc{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseFloat(f[11], 64)
		stm, _ := strconv.ParseFloat(f[12], 64)
		procs[pid] = proc{ppid, (ut + stm) / 100} // USER_HZ is 100 on Linux
	}
	in := func(pid int) bool {
		for range 10 {
			if pid == root {
				return true
			}
			p, ok := procs[pid]
			if !ok || p.ppid <= 1 {
				return false
			}
			pid = p.ppid
		}
		return false
	}
	var c cpuTimes
	for pid, p := range procs {
		if !in(pid) {
			continue
		}
		c.ok = true
		c.all += p.cpu
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		switch {
		case strings.Contains(string(cmd), "--type=renderer"):
			c.renderer += p.cpu
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, pid)); err == nil {
				s := string(b)
				f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
				if len(f) >= 13 {
					ut, _ := strconv.ParseFloat(f[11], 64)
					stm, _ := strconv.ParseFloat(f[12], 64)
					c.rendererMain += (ut + stm) / 100
				}
			}
		case strings.Contains(string(cmd), "--type=gpu-process"):
			c.gpu += p.cpu
		case pid == root:
			c.browser += p.cpu
		}
	}
	return c
}
