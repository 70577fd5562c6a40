package config

import (
	"fmt"
	"net/url"
	"regexp"
	"time"
)

// Collectors configures the collectors. This file is owned by the collectors
// work; config.go only embeds the type.
//
// Every collector section has the keys enabled, interval and timeout: the
// sections with keys of their own embed Common inline, so those keys sit
// directly in the section ("collectors.cpu.interval",
// LIVEDASH_COLLECTORS_CPU_INTERVAL) and are read as c.CPU.Interval or, all
// three at once, c.CPU.Common. enabled left unset means the collector's own
// default (host collectors on Linux: on; synthetic: only with --demo).
// timeout 0 means "the interval". Lists of targets are set in the file only.
type Collectors struct {
	CPU        CPU        `yaml:"cpu"`
	Memory     Common     `yaml:"memory"`
	Load       Common     `yaml:"load"`
	Disk       Disk       `yaml:"disk"`
	Filesystem Filesystem `yaml:"filesystem"`
	Network    Network    `yaml:"network"`
	System     Common     `yaml:"system"`
	Self       Common     `yaml:"self"`
	HTTP       HTTPProbe  `yaml:"http"`
	Prometheus Scrape     `yaml:"prometheus"`
	Exec       Exec       `yaml:"exec"`
	Synthetic  Synthetic  `yaml:"synthetic"`
}

// Common are the keys every collector section has. Sections with further
// keys embed it with `yaml:",inline"`.
type Common struct {
	Enabled  *bool    `yaml:"enabled"`
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
}

// CPU configures the cpu collector.
type CPU struct {
	Common `yaml:",inline"`
	PerCPU bool `yaml:"per_cpu"` // also report every core, not only cpu="total"; default true
}

// Disk configures the disk collector.
type Disk struct {
	Common `yaml:",inline"`
	// DeviceExclude is a regular expression of device names to skip; the
	// default skips partitions, loop and ram devices (node_exporter's default).
	DeviceExclude string `yaml:"device_exclude"`
}

// Filesystem configures the filesystem collector.
type Filesystem struct {
	Common `yaml:",inline"`
	// FSTypeExclude and MountPointExclude are regular expressions; the
	// defaults skip pseudo filesystems (proc, sysfs, cgroup, overlay, ...).
	FSTypeExclude     string `yaml:"fs_type_exclude"`
	MountPointExclude string `yaml:"mount_point_exclude"`
}

// Network configures the network collector.
type Network struct {
	Common `yaml:",inline"`
	// DeviceExclude is a regular expression of interfaces to skip; default "^lo$".
	DeviceExclude string `yaml:"device_exclude"`
}

// HTTPProbe configures the http probe collector: every target is probed once
// per interval, all targets concurrently.
type HTTPProbe struct {
	Common  `yaml:",inline"`
	Targets []HTTPTarget `yaml:"targets"`
}

// HTTPTarget is one probed URL.
type HTTPTarget struct {
	Name           string   `yaml:"name"`            // label value; default: the URL's host
	URL            string   `yaml:"url"`             // http or https
	Method         string   `yaml:"method"`          // GET, HEAD or OPTIONS; "" = DefaultHTTPMethod
	ExpectedStatus int      `yaml:"expected_status"` // 0 = any 2xx
	Timeout        Duration `yaml:"timeout"`         // 0 = the collector's timeout
}

// Scrape configures the prometheus collector: every target is scraped on its
// own interval.
type Scrape struct {
	Common `yaml:",inline"`
	// MaxSeries caps the series kept per target per scrape; the excess is
	// dropped and counted. Default 10000.
	MaxSeries int `yaml:"max_series"`
	// MaxBodyBytes caps the bytes read per scrape. A text-format body over
	// the cap is cut at the last complete line. Default 8 MiB.
	MaxBodyBytes int64          `yaml:"max_body_bytes"`
	Targets      []ScrapeTarget `yaml:"targets"`
}

// ScrapeTarget is one exporter endpoint.
type ScrapeTarget struct {
	Name     string   `yaml:"name"`     // label value (target="…"); default: the URL's host
	URL      string   `yaml:"url"`      // http or https
	Interval Duration `yaml:"interval"` // 0 = the collector's interval
	Timeout  Duration `yaml:"timeout"`  // 0 = the collector's timeout
	// Match is a regular expression a metric family name must match
	// (unanchored, as in Go's regexp; use ^…$ to anchor). Empty = all.
	Match string `yaml:"match"`
	// MatchLabels maps a label name to a regular expression its value must
	// match (a missing label is the empty string).
	MatchLabels map[string]string `yaml:"match_labels"`
	MaxSeries   int               `yaml:"max_series"` // 0 = the collector's max_series
}

// Exec configures the exec collector: every command runs on its own interval.
type Exec struct {
	Common `yaml:",inline"`
	// MaxOutputBytes caps the bytes of stdout read per run; default 1 MiB.
	MaxOutputBytes int64         `yaml:"max_output_bytes"`
	Commands       []ExecCommand `yaml:"commands"`
}

// ExecCommand is one command. It is run directly (no shell); write
// command: sh, args: ["-c", "…"] for shell syntax.
type ExecCommand struct {
	Name     string   `yaml:"name"` // label value (command="…"), required
	Command  string   `yaml:"command"`
	Args     []string `yaml:"args"`
	Interval Duration `yaml:"interval"` // 0 = the collector's interval
	Timeout  Duration `yaml:"timeout"`  // 0 = the collector's timeout
}

// Synthetic configures the synthetic signal generator (demos, benchmarks).
// Its interval may be as short as 10ms.
type Synthetic struct {
	Common `yaml:",inline"`
	Series int `yaml:"series"` // number of series; default 16
	// PayloadBytes adds a label of this many bytes to every sample, to make
	// frames as large as a benchmark needs. Default 0.
	PayloadBytes int `yaml:"payload_bytes"`
}

// Collector limits, shared by defaults and validation.
const (
	DefaultDiskDeviceExclude       = `^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p|mmcblk\d+p)\d+$`
	DefaultFSTypeExclude           = `^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|efivarfs|fusectl|fuse\.lxcfs|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|ramfs|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs|nfsd|tmpfs)$`
	DefaultMountPointExclude       = `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`
	DefaultNetworkDeviceExcl       = `^lo$`
	DefaultHTTPMethod              = "GET" // of an http target that names none
	minInterval                    = 100 * time.Millisecond
	minSyntheticInterval           = 10 * time.Millisecond
	maxInterval                    = time.Hour
	maxScrapeSeries                = 1_000_000
	maxSyntheticSeries             = 100_000
	maxSyntheticPayload            = 64 << 10
	maxScrapeBodyBytes       int64 = 1 << 30
)

// defaultCollectors returns the collector defaults.
func defaultCollectors() Collectors {
	c := Common{Interval: Duration(time.Second)}
	remote := Common{Interval: Duration(5 * time.Second)}
	return Collectors{
		CPU:        CPU{Common: c, PerCPU: true},
		Memory:     c,
		Load:       c,
		Disk:       Disk{Common: c, DeviceExclude: DefaultDiskDeviceExclude},
		Filesystem: Filesystem{Common: c, FSTypeExclude: DefaultFSTypeExclude, MountPointExclude: DefaultMountPointExclude},
		Network:    Network{Common: c, DeviceExclude: DefaultNetworkDeviceExcl},
		System:     c,
		Self:       c,
		HTTP:       HTTPProbe{Common: remote},
		Prometheus: Scrape{Common: remote, MaxSeries: 10_000, MaxBodyBytes: 8 << 20},
		Exec:       Exec{Common: remote, MaxOutputBytes: 1 << 20},
		Synthetic:  Synthetic{Common: c, Series: 16},
	}
}

var targetNameRe = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// validate reports every problem of c through add, with key paths under
// "collectors.".
func (c *Collectors) validate(add func(path string, value any, reason string)) {
	common := func(name string, s Common, min time.Duration) {
		p := "collectors." + name
		checkInterval(add, p+".interval", s.Interval, min)
		checkTimeout(add, p+".timeout", s.Timeout, s.Interval)
	}
	common("cpu", c.CPU.Common, minInterval)
	common("memory", c.Memory, minInterval)
	common("load", c.Load, minInterval)
	common("disk", c.Disk.Common, minInterval)
	common("filesystem", c.Filesystem.Common, minInterval)
	common("network", c.Network.Common, minInterval)
	common("system", c.System, minInterval)
	common("self", c.Self, minInterval)
	common("http", c.HTTP.Common, minInterval)
	common("prometheus", c.Prometheus.Common, minInterval)
	common("exec", c.Exec.Common, minInterval)
	common("synthetic", c.Synthetic.Common, minSyntheticInterval)

	checkRegexp(add, "collectors.disk.device_exclude", c.Disk.DeviceExclude)
	checkRegexp(add, "collectors.filesystem.fs_type_exclude", c.Filesystem.FSTypeExclude)
	checkRegexp(add, "collectors.filesystem.mount_point_exclude", c.Filesystem.MountPointExclude)
	checkRegexp(add, "collectors.network.device_exclude", c.Network.DeviceExclude)

	names := map[string]bool{}
	for i, t := range c.HTTP.Targets {
		p := fmt.Sprintf("collectors.http.targets[%d]", i)
		checkURL(add, p+".url", t.URL)
		checkTargetName(add, p+".name", t.Name, t.URL, names)
		switch t.Method {
		case "", "GET", "HEAD", "OPTIONS":
		default:
			add(p+".method", t.Method, "must be GET, HEAD or OPTIONS")
		}
		if t.ExpectedStatus != 0 && (t.ExpectedStatus < 100 || t.ExpectedStatus > 599) {
			add(p+".expected_status", t.ExpectedStatus, "must be 0 (any 2xx) or an HTTP status from 100 to 599")
		}
		if t.Timeout != 0 {
			checkTimeout(add, p+".timeout", t.Timeout, c.HTTP.Interval)
		}
	}

	if c.Prometheus.MaxSeries < 1 || c.Prometheus.MaxSeries > maxScrapeSeries {
		add("collectors.prometheus.max_series", c.Prometheus.MaxSeries, fmt.Sprintf("must be from 1 to %d", maxScrapeSeries))
	}
	if c.Prometheus.MaxBodyBytes < 1024 || c.Prometheus.MaxBodyBytes > maxScrapeBodyBytes {
		add("collectors.prometheus.max_body_bytes", c.Prometheus.MaxBodyBytes, fmt.Sprintf("must be from 1024 to %d", maxScrapeBodyBytes))
	}
	names = map[string]bool{}
	for i, t := range c.Prometheus.Targets {
		p := fmt.Sprintf("collectors.prometheus.targets[%d]", i)
		checkURL(add, p+".url", t.URL)
		checkTargetName(add, p+".name", t.Name, t.URL, names)
		interval := t.Interval
		if interval == 0 {
			interval = c.Prometheus.Interval
		} else {
			checkInterval(add, p+".interval", t.Interval, minInterval)
		}
		if t.Timeout != 0 {
			checkTimeout(add, p+".timeout", t.Timeout, interval)
		}
		checkRegexp(add, p+".match", t.Match)
		for k, v := range t.MatchLabels {
			checkRegexp(add, p+".match_labels."+k, v)
		}
		if t.MaxSeries < 0 || t.MaxSeries > maxScrapeSeries {
			add(p+".max_series", t.MaxSeries, fmt.Sprintf("must be from 0 (the collector's max_series) to %d", maxScrapeSeries))
		}
	}

	if c.Exec.MaxOutputBytes < 1 || c.Exec.MaxOutputBytes > 64<<20 {
		add("collectors.exec.max_output_bytes", c.Exec.MaxOutputBytes, "must be from 1 to 67108864")
	}
	names = map[string]bool{}
	for i, x := range c.Exec.Commands {
		p := fmt.Sprintf("collectors.exec.commands[%d]", i)
		switch {
		case x.Name == "":
			add(p+".name", x.Name, "is required")
		case !targetNameRe.MatchString(x.Name):
			add(p+".name", x.Name, "must be 1 to 64 of A-Z a-z 0-9 _ . : -")
		case names[x.Name]:
			add(p+".name", x.Name, "is used twice")
		}
		names[x.Name] = true
		if x.Command == "" {
			add(p+".command", x.Command, "is required")
		}
		interval := x.Interval
		if interval == 0 {
			interval = c.Exec.Interval
		} else {
			checkInterval(add, p+".interval", x.Interval, minInterval)
		}
		if x.Timeout != 0 {
			checkTimeout(add, p+".timeout", x.Timeout, interval)
		}
	}

	if c.Synthetic.Series < 1 || c.Synthetic.Series > maxSyntheticSeries {
		add("collectors.synthetic.series", c.Synthetic.Series, fmt.Sprintf("must be from 1 to %d", maxSyntheticSeries))
	}
	if c.Synthetic.PayloadBytes < 0 || c.Synthetic.PayloadBytes > maxSyntheticPayload {
		add("collectors.synthetic.payload_bytes", c.Synthetic.PayloadBytes, fmt.Sprintf("must be from 0 to %d", maxSyntheticPayload))
	}
}

func checkInterval(add func(string, any, string), path string, d Duration, min time.Duration) {
	if d.D() < min || d.D() > maxInterval {
		add(path, d, fmt.Sprintf("must be from %s to %s", min, maxInterval))
	}
}

// checkTimeout: 0 means "the interval"; a longer timeout would let runs
// overlap the next tick, so it is refused.
func checkTimeout(add func(string, any, string), path string, timeout, interval Duration) {
	if timeout != 0 && timeout > interval {
		add(path, timeout, fmt.Sprintf("must not exceed the interval (%s); 0 means the interval", interval))
	}
}

func checkRegexp(add func(string, any, string), path, expr string) {
	if _, err := regexp.Compile(expr); err != nil {
		add(path, expr, "not a valid regular expression (Go RE2 syntax)")
	}
}

func checkURL(add func(string, any, string), path, raw string) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		add(path, raw, "is required")
	case err != nil:
		add(path, RedactURL(raw), "not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		add(path, RedactURL(raw), "must be an http:// or https:// URL")
	case u.Host == "":
		add(path, RedactURL(raw), "needs a host")
	}
}

// checkTargetName checks a target's name, or the name derived from its URL
// when none is given, for shape and uniqueness within one list.
func checkTargetName(add func(string, any, string), path, name, rawURL string, seen map[string]bool) {
	n := name
	if n == "" {
		n = TargetName(rawURL)
		if n == "" {
			return // the URL is reported already
		}
	} else if !targetNameRe.MatchString(n) {
		add(path, name, "must be 1 to 64 of A-Z a-z 0-9 _ . : -")
		return
	}
	if seen[n] {
		add(path, n, "is used twice in this list; give each target a distinct name")
	}
	seen[n] = true
}

// TargetName is the default name of a target: the host (and port) of its URL.
// It returns "" for an unparsable URL.
func TargetName(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Host
}
