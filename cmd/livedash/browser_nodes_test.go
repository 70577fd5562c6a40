package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"livedash/dashboard/store/redis/redistest"
)

// TestBrowserTwoNodes: two instances on one Redis ring, the page opened on
// alpha. The node selector lists both nodes and "all nodes", starts on the
// instance's own node and names it in the header; choosing beta redraws
// every host chart from beta's samples only, and "all nodes" draws both.
func TestBrowserTwoNodes(t *testing.T) { twoNodes(t, false) }

// TestBrowserNodeJoinsLater: the page opened on alpha while it is the only
// node has no selector; when beta starts, beta's frames bring the selector
// up on alpha, and the charts keep alpha's series only.
func TestBrowserNodeJoinsLater(t *testing.T) { twoNodes(t, true) }

func twoNodes(t *testing.T, late bool) {
	srv := redistest.Start(t, redistest.Options{})
	a := startReady(t, "--config", redisConf(t, srv.URL(), "nodes", "alpha", time.Second, ""))
	beta := func() {
		startReady(t, "--config", redisConf(t, srv.URL(), "nodes", "beta", time.Second, ""))
		waitFor(t, "alpha to see both nodes", 20*time.Second, func() bool {
			var st struct{ Nodes []struct{ Name string } }
			getJSON(t, a.URL+"/api/v1/status", &st)
			return len(st.Nodes) == 2
		})
	}
	if !late {
		beta()
	}

	ctx, check := openPage(t, a.URL+"/")
	host := []string{"cpu", "memory", "load"}
	// nodesDrawn: per chart, the node labels of the series it holds.
	nodesDrawn := func() map[string][]string {
		t.Helper()
		m, err := chromedp.Run(ctx, chromedp.Evaluate[map[string][]string](`Object.fromEntries(['cpu', 'memory', 'load'].map((id) =>
			[id, [...new Set(window.livedash.panels().get(id).series.filter((s) => !s.ref).map((s) => s.labels.node || ''))].sort()]))`))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	showing := func(want ...string) func() bool {
		return func() bool {
			ok, err := chartsReady(ctx, host)
			if err != nil || !ok {
				return false
			}
			for _, id := range host {
				if !slices.Equal(nodesDrawn()[id], want) {
					return false
				}
			}
			return true
		}
	}
	header := func() (sel, text, title string, options []string) {
		t.Helper()
		r, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => { const s = document.getElementById('node');
			return [s.hidden ? 'hidden' : s.value, document.getElementById('host').textContent, document.title, ...[...s.options].map((o) => o.textContent)]; })()`))
		if err != nil {
			t.Fatal(err)
		}
		return r[0], r[1], r[2], r[3:]
	}
	choose := func(v string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const s = document.getElementById('node'); s.value = `+mustJSON(v)+`;
			s.dispatchEvent(new Event('change')); return true; })()`)); err != nil {
			t.Fatal(err)
		}
	}

	if late {
		waitFor(t, "alpha's charts, alone", 20*time.Second, showing("alpha"))
		if sel, _, _, _ := header(); sel != "hidden" {
			t.Errorf("selector %q with one node, want it hidden", sel)
		}
		beta()
		// beta's first frames can reach the charts before the selector is
		// up (one /api/v1/status round trip); then the charts are re-loaded
		// with alpha's series only, below.
		waitFor(t, "the selector after beta joined", 20*time.Second, func() bool {
			sel, _, _, _ := header()
			return sel == "alpha"
		})
	}
	waitFor(t, "alpha's charts", 20*time.Second, showing("alpha"))
	sel, text, title, options := header()
	if sel != "alpha" || text != "alpha" || !strings.HasPrefix(title, "alpha") || !slices.Equal(options, []string{"alpha", "beta", "all nodes"}) {
		t.Errorf("selector %q of %q, header %q, title %q; want alpha of alpha, beta, all nodes, named in header and title", sel, options, text, title)
	}
	screenshot(t, ctx, "livedash-node-alpha.png")

	choose("beta")
	waitFor(t, "beta's charts", 20*time.Second, showing("beta"))
	if _, text, _, _ := header(); text != "beta" {
		t.Errorf("header %q after choosing beta", text)
	}
	// The charts go on live from beta's frames.
	before := debugOf(t, ctx).Charts["cpu"].LastSeq
	waitFor(t, "beta's cpu chart live", 10*time.Second, func() bool { return debugOf(t, ctx).Charts["cpu"].LastSeq > before })
	screenshot(t, ctx, "livedash-node-beta.png")
	// Per core keeps to the node shown too.
	perCore := func() {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`[...window.livedash.panels().get('cpu').el.querySelectorAll('.head button')].find((b) => b.textContent === 'per core').click() || true`)); err != nil {
			t.Fatal(err)
		}
	}
	perCore()
	waitFor(t, "beta's cores", 20*time.Second, func() bool {
		r, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => { const p = window.livedash.panels().get('cpu');
			return p.perCore && p.state === 'ready' ? [...new Set(p.series.filter((s) => !s.ref).map((s) => s.labels.node || ''))].sort() : ['not yet']; })()`))
		return err == nil && slices.Equal(r, []string{"beta"})
	})
	perCore()

	choose("")
	waitFor(t, "both nodes' charts", 20*time.Second, showing("alpha", "beta"))
	if _, text, _, _ := header(); text != "all nodes" {
		t.Errorf("header %q after choosing all nodes", text)
	}
	if loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`)); err != nil || !strings.Contains(loc, "node=") {
		t.Errorf("URL %q (%v) does not keep the choice", loc, err)
	}
	screenshot(t, ctx, "livedash-node-all.png")
	check()
}
