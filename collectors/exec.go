package collectors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os/exec"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"livedash/config"
)

// execCollector runs one configured command per tick and reports what it
// prints on stdout, each sample labelled command="<name>". Output is either
// a JSON object of numbers ({"queue_depth": 12, "workers": 4}) or lines of
// "name value" ("#" comments and blank lines ignored). Names must be valid
// Prometheus metric names. Valid samples are kept even if some lines are
// garbage; the garbage is reported as an error (counted, logged).
//
// The command runs in its own process group; on timeout or shutdown the
// whole group is killed, so a shell's children die with it.
type execCollector struct {
	name      string
	command   string
	args      []string
	maxOutput int64
	log       *slog.Logger
	labels    labelSet
	up        prometheus.Gauge
	errs      prometheus.Counter
}

func newExec(c *config.Collectors, e env) ([]*job, error) {
	maxOut := c.Exec.MaxOutputBytes
	if maxOut <= 0 {
		maxOut = config.Default().Collectors.Exec.MaxOutputBytes
	}
	var jobs []*job
	for _, x := range c.Exec.Commands {
		jobs = append(jobs, &job{
			info: Info{Target: x.Name, Interval: x.Interval.D(), Timeout: x.Timeout.D(), Collector: "exec/" + x.Name},
			c: &execCollector{
				name: x.Name, command: x.Command, args: x.Args, maxOutput: maxOut,
				log:  e.log.With("command", x.Name),
				up:   e.m.targetUp.WithLabelValues("exec", x.Name),
				errs: e.m.targetErrors.WithLabelValues("exec", x.Name),
			},
		})
	}
	return jobs, nil
}

// errOutputTooLarge is returned when a command prints more than max_output_bytes.
var errOutputTooLarge = errors.New("collectors: command output too large")

func (c *execCollector) collect(ctx context.Context, _ time.Time) ([]Sample, error) {
	samples, err := c.run(ctx)
	if err != nil {
		c.up.Set(0)
		c.errs.Inc()
		return samples, err
	}
	c.up.Set(1)
	return samples, nil
}

func (c *execCollector) run(ctx context.Context) ([]Sample, error) {
	cmd := exec.CommandContext(ctx, c.command, c.args...)
	setProcessGroup(cmd)
	// WaitDelay bounds the wait for stdout to close after the kill: a
	// grandchild that escaped the group could otherwise hold it open.
	cmd.WaitDelay = time.Second
	var stdout limitedBuffer
	stdout.max = c.maxOutput
	var stderr limitedBuffer
	stderr.max = 4 << 10
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("run %s: killed after timeout: %w", c.name, ctx.Err())
	case stdout.over:
		return nil, fmt.Errorf("run %s: %w (over %d bytes)", c.name, errOutputTooLarge, c.maxOutput)
	case err != nil:
		return nil, fmt.Errorf("run %s: %w (stderr %q)", c.name, err, bytes.TrimSpace(stderr.buf.Bytes()))
	}
	parsed, perr := parseExecOutput(stdout.buf.Bytes())
	out := make([]Sample, len(parsed))
	for i, p := range parsed {
		out[i] = Sample{Name: p.Name, Labels: c.labels.get("command", c.name, "", "", "", ""), Value: p.Value}
	}
	if perr != nil {
		return out, fmt.Errorf("run %s: %w", c.name, perr)
	}
	return out, nil
}

// limitedBuffer keeps at most max bytes and remembers that there were more.
// Writes never fail, so the command is not killed by SIGPIPE for talking too
// much; the run is rejected afterwards instead.
type limitedBuffer struct {
	buf  bytes.Buffer
	max  int64
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	room := b.max - int64(b.buf.Len())
	if int64(len(p)) > room {
		b.over = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	b.buf.Write(p)
	return len(p), nil
}

var _ io.Writer = (*limitedBuffer)(nil)

// parseExecOutput parses a command's output: a JSON object of finite
// numbers, or "name value" lines. It returns every valid sample (without
// labels) and an error describing the first invalid line or key, if any.
func parseExecOutput(data []byte) ([]Sample, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, nil
	}
	if trimmed[0] == '{' {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &obj); err != nil {
			return nil, fmt.Errorf("%w: output is not a JSON object of numbers", errParse)
		}
		var out []Sample
		var bad error
		for _, k := range sortedKeys(obj) {
			var v float64
			if err := json.Unmarshal(obj[k], &v); err != nil || !model.LegacyValidation.IsValidMetricName(k) {
				if bad == nil {
					bad = fmt.Errorf("%w: key %q: want a metric name with a number", errParse, k)
				}
				continue
			}
			out = append(out, Sample{Name: k, Value: v})
		}
		return out, bad
	}
	var out []Sample
	var bad error
	n := 0
	_ = lines(data, func(line []byte) error {
		n++
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			return nil
		}
		name, rest := nextField(line)
		val, extra := nextField(rest)
		v, err := strconv.ParseFloat(string(val), 64)
		if err != nil || len(bytes.TrimSpace(extra)) > 0 || !model.LegacyValidation.IsValidMetricName(string(name)) ||
			math.IsNaN(v) || math.IsInf(v, 0) {
			if bad == nil {
				bad = fmt.Errorf("%w: line %d %q: want \"name value\"", errParse, n, truncate(line, 80))
			}
			return nil
		}
		out = append(out, Sample{Name: string(name), Value: v})
		return nil
	})
	return out, bad
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
