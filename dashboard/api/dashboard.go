package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"livedash/config"
)

// dashboardBody is GET /api/v1/dashboard: everything the page needs to lay
// itself out, in one answer that changes only with the configuration.
type dashboardBody struct {
	Host string `json:"host"` // the machine's host name
	Node string `json:"node"` // this instance's name (the host name unless configured)
	CPUs int    `json:"cpus"` // CPUs of the host; per_cpu levels are multiplied by it
	// Panels in the order shown (the built-in ones without configuration).
	Panels []dashboardPanel `json:"panels"`
	// OtherTopics: the page also shows a panel for every topic no panel
	// names (HTTP probes, scraped targets, exec commands, pushes).
	OtherTopics bool                 `json:"other_topics"`
	Thresholds  []dashboardThreshold `json:"thresholds"`
}

type dashboardPanel struct {
	ID      string            `json:"id"`
	Title   string            `json:"title"`
	Topic   string            `json:"topic"`
	Series  []string          `json:"series"`  // metric names, in order; []: every series of the topic
	Include map[string]string `json:"include"` // label → anchored regular expression
	Exclude map[string]string `json:"exclude"`
	Unit    string            `json:"unit"` // config.PanelUnits
	Stack   bool              `json:"stack"`
	Axes    string            `json:"axes"` // config.PanelAxes
}

type dashboardThreshold struct {
	Series  string            `json:"series"`
	Labels  map[string]string `json:"labels"`  // label → anchored regular expression
	Exclude map[string]string `json:"exclude"` // label → anchored regular expression
	SumOver []string          `json:"sum_over"`
	Of      *string           `json:"of"`
	Below   bool              `json:"below"`
	// The levels, per_cpu already multiplied out; with Of, fractions of
	// the Of series' value. null: not set.
	Warning  *float64 `json:"warning"`
	Critical *float64 `json:"critical"`
}

// buildDashboard encodes the /api/v1/dashboard answer once.
func (a *API) buildDashboard() *encoded {
	panels, others := a.opts.Dashboard.EffectivePanels()
	node := a.opts.Node
	if node == "" {
		node = a.opts.Host
	}
	body := dashboardBody{Host: a.opts.Host, Node: node, CPUs: a.opts.CPUs, OtherTopics: others,
		Panels: make([]dashboardPanel, 0, len(panels)), Thresholds: make([]dashboardThreshold, 0, len(a.thresholds))}
	nonNil := func(m map[string]string) map[string]string {
		if m == nil {
			return map[string]string{}
		}
		return m
	}
	for _, p := range panels {
		series := p.Series
		if series == nil {
			series = []string{}
		}
		body.Panels = append(body.Panels, dashboardPanel{ID: p.ID, Title: p.Title, Topic: p.Topic, Series: series,
			Include: nonNil(p.Include), Exclude: nonNil(p.Exclude), Unit: p.Unit, Stack: p.Stack, Axes: p.Axes})
	}
	for _, t := range a.thresholds {
		d := dashboardThreshold{Series: t.cfg.Series, Labels: nonNil(t.cfg.Labels), Exclude: nonNil(t.cfg.Exclude),
			SumOver: t.cfg.SumOver, Below: t.cfg.Below}
		if d.SumOver == nil {
			d.SumOver = []string{}
		}
		if t.cfg.Of != "" {
			d.Of = &t.cfg.Of
		}
		if t.hasWarning {
			d.Warning = &t.warning
		}
		if t.hasCritic {
			d.Critical = &t.critical
		}
		body.Thresholds = append(body.Thresholds, d)
	}
	b, err := json.Marshal(body)
	if err != nil { // only strings, numbers and maps of strings: cannot fail
		panic(err)
	}
	b = append(b, '\n')
	sum := sha256.Sum256(b)
	return &encoded{etag: `"` + hex.EncodeToString(sum[:12]) + `"`, body: b}
}

// dashboard serves GET /api/v1/dashboard (see dashboardBody), with an ETag.
func (a *API) dashboard(c echo.Context) error {
	if aerr := ParseNoParams(c.QueryString()); aerr != nil {
		return aerr
	}
	e := a.dashboardBody
	h := c.Response().Header()
	h[echo.HeaderCacheControl] = noCache
	h.Set("ETag", e.etag)
	if etagMatch(c.Request().Header.Get("If-None-Match"), e.etag) {
		return c.NoContent(http.StatusNotModified)
	}
	return writeJSON(c, e.body, nil)
}

// PanelTopics are the topics the configured (or built-in) panels show:
// known to the API before their first frame.
func PanelTopics(d config.Dashboard) []string {
	panels, _ := d.EffectivePanels()
	var out []string
	for _, p := range panels {
		if !contains(out, p.Topic) {
			out = append(out, p.Topic)
		}
	}
	return out
}
