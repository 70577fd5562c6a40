package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	promcollectors "github.com/prometheus/client_golang/prometheus/collectors"
	"go.yaml.in/yaml/v3"

	"livedash/config"
	"livedash/dashboard"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
	"livedash/dashboard/store/redis"
)

// serveFlags are the flags of `livedash serve`. Flags win over the
// environment, which wins over the file, which wins over the defaults.
type serveFlags struct {
	config, listen, store, logFormat, logLevel string
	webConfig                                  string
	demo, dev                                  bool
	devDir                                     string
}

// serveFlagSet declares serve's flags on a new FlagSet and returns it with
// the values it fills in.
func serveFlagSet() (*flag.FlagSet, *serveFlags) {
	f := &serveFlags{}
	fs := flag.NewFlagSet("livedash serve", flag.ContinueOnError)
	fs.StringVar(&f.config, "config", "", "YAML configuration file (default: built-in defaults)")
	fs.StringVar(&f.listen, "listen", "", "listen address, e.g. 127.0.0.1:7070 (overrides listen)")
	fs.StringVar(&f.store, "store", "", "store file path (overrides store.path)")
	fs.StringVar(&f.webConfig, "web.config.file", "", "Prometheus web configuration file: TLS, HTTP/2, headers, basic_auth_users (overrides http.web_config_file)")
	fs.StringVar(&f.logFormat, "log-format", "", "text or json (overrides log_format)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (overrides log_level)")
	fs.BoolVar(&f.demo, "demo", false, "enable the synthetic collector (demo data)")
	fs.BoolVar(&f.dev, "dev", false, "serve the page from assets/web on disk instead of the embedded copy")
	fs.StringVar(&f.devDir, "dev-dir", "assets/web", "directory --dev serves the page from")
	return fs, f
}

func parseServeFlags(args []string, stdout, stderr io.Writer) (serveFlags, bool, error) {
	fs, f := serveFlagSet()
	if help, err := parseFlags(fs, args, stdout, stderr); help || err != nil {
		return *f, help, err
	}
	if fs.NArg() > 0 {
		return *f, false, usageErr("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return *f, false, nil
}

// loadConfig applies file, environment and flags, then validates, and
// returns every problem of all three at once (configProblems), each saying
// where its value came from.
func loadConfig(f serveFlags) (config.Config, error) {
	cfg, origin, err := config.LoadWithOrigin(f.config, os.Environ())
	set := func(dst *string, v, key, flag string) {
		if v != "" {
			*dst = v
			origin.SetBy(key, flag)
		}
	}
	set(&cfg.Listen, f.listen, "listen", "--listen")
	set(&cfg.Store.Path, f.store, "store.path", "--store")
	set(&cfg.LogFormat, f.logFormat, "log_format", "--log-format")
	set(&cfg.LogLevel, f.logLevel, "log_level", "--log-level")
	set(&cfg.HTTP.WebConfigFile, f.webConfig, "http.web_config_file", "--web.config.file")
	if verr := cfg.Validate(); verr != nil || err != nil {
		return cfg, configProblems(f.config, errors.Join(err, origin.Locate(verr)))
	}
	return cfg, nil
}

// configProblems is the one way serve and config check report a
// configuration that cannot be used: a heading naming the file, then every
// problem on a line of its own, indented — exit status 2.
func configProblems(file string, err error) error {
	var lines []string
	var walk func(error)
	walk = func(err error) {
		var ce *config.Errors
		switch e := err.(type) {
		case nil:
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		default:
			if errors.As(err, &ce) {
				for _, p := range ce.Problems {
					lines = append(lines, p.String())
				}
				return
			}
			lines = append(lines, strings.Split(err.Error(), "\n")...)
		}
	}
	walk(err)
	head := "the configuration has problems"
	if file != "" {
		head += " (lines are of " + file + ")"
	}
	return &exitError{2, errors.New(head + ":\n  " + strings.Join(lines, "\n  "))}
}

func runConfigCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("livedash config check", flag.ContinueOnError)
	path := fs.String("config", "", "YAML configuration file")
	webConfig := fs.String("web.config.file", "", "web configuration file to check too (overrides http.web_config_file)")
	if help, err := parseFlags(fs, args, stdout, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("config check: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	cfg, err := loadConfig(serveFlags{config: *path, webConfig: *webConfig})
	if err != nil {
		return err
	}
	if _, err := loadWebConfig(cfg); err != nil {
		return configProblems(*path, err)
	}
	name := *path
	if name == "" {
		name = "built-in defaults"
	}
	fmt.Fprintf(stdout, "# %s: ok; the effective configuration (secrets redacted):\n", name)
	enc := yaml.NewEncoder(stdout)
	enc.SetIndent(2)
	if err := enc.Encode(cfg.Redacted()); err != nil {
		return fmt.Errorf("print configuration: %w", err)
	}
	return enc.Close()
}

// loadWebConfig loads http.web_config_file, if one is set. Its errors name
// the file and the problem: a file that is set and bad stops start-up.
func loadWebConfig(cfg config.Config) (*dashboard.WebConfig, error) {
	if cfg.HTTP.WebConfigFile == "" {
		return nil, nil
	}
	return dashboard.LoadWebConfig(cfg.HTTP.WebConfigFile)
}

// warnExposure says at start-up, once, when the server can be reached
// beyond this machine while nobody has to log in, and exactly how to turn
// the login on.
func warnExposure(log *slog.Logger, cfg config.Config, web *dashboard.WebConfig) {
	if loopbackOnly(cfg.Listen) || (web != nil && len(web.Users) > 0) {
		return
	}
	log.Warn("listening beyond loopback without a login: anyone who can reach "+cfg.Listen+" can read every metric. "+
		"To require a login, write a web config file with basic_auth_users mapping a user to a bcrypt hash "+
		"(`htpasswd -nBC 10 admin` prints one) and tls_server_config with cert_file and key_file (so that the password "+
		"is not sent in the clear), then start livedash with --web.config.file FILE or set http.web_config_file; "+
		"or listen on 127.0.0.1 only.", "listen", cfg.Listen)
}

// loopbackOnly reports whether listen binds loopback addresses only.
func loopbackOnly(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func newLogger(format, level string, w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// listenHookKey lets tests learn the bound address when they pass
// --listen 127.0.0.1:0.
type listenHookKey struct{}

func withListenHook(ctx context.Context, fn func(addr string)) context.Context {
	return context.WithValue(ctx, listenHookKey{}, fn)
}

// errStoreLost: the shared store's epoch vanished from Redis; serving
// starts over on the ring's new epoch.
var errStoreLost = errors.New("the shared store lost its epoch")

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags, help, err := parseServeFlags(args, stdout, stderr)
	if help || err != nil {
		return err
	}
	cfg, err := loadConfig(flags)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogFormat, cfg.LogLevel, stderr)

	// Before anything is opened or started: a bad file stops start-up.
	web, err := loadWebConfig(cfg)
	if err != nil {
		return &exitError{2, err}
	}
	// The socket is bound first and kept for the life of the process: the
	// standby answers on it while a Redis store cannot be reached, and a
	// restart on a new epoch keeps the address.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	sock, err := newSocket(ln)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	defer func() { _ = sock.Close() }()
	where := cfg.Store.Path
	if cfg.SharedStore() {
		where = config.RedactURL(cfg.Store.Redis.URL)
	}
	// Announced once something answers on the socket (or is about to): the
	// server with the bbolt store open — a store another process holds is
	// an error before that — or the standby waiting for Redis.
	announce := sync.OnceFunc(func() {
		scheme := "http"
		if web != nil && web.TLS != nil {
			scheme = "https"
		}
		log.Info("livedash listening", "addr", ln.Addr().String(), "url", scheme+"://"+ln.Addr().String()+"/",
			"version", version(), "store", where, "node", cfg.NodeName(), "tls", scheme == "https", "login", web != nil && len(web.Users) > 0)
		warnExposure(log, cfg, web)
		if hook, ok := ctx.Value(listenHookKey{}).(func(string)); ok {
			hook(ln.Addr().String())
		}
	})
	for {
		err := serveOnce(ctx, cfg, flags, web, sock, log, announce)
		if !errors.Is(err, errStoreLost) {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("serving again on the shared ring's new epoch; clients resuming with IDs of the old one get reset unknown_epoch", "err", err)
	}
}

// serveOnce opens the store, wires and serves until ctx ends, or until a
// shared store loses its epoch (errStoreLost): a store's epoch is fixed for
// its life, and so are the hub's and the API's, so everything is built anew
// on the new one.
func serveOnce(ctx context.Context, cfg config.Config, flags serveFlags, web *dashboard.WebConfig, sock *socket, log *slog.Logger, announce func()) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(promcollectors.NewGoCollector(), promcollectors.NewProcessCollector(promcollectors.ProcessCollectorOpts{}))

	st, lost, err := openStore(ctx, cfg, flags, web, sock, reg, log, announce)
	if err != nil || st == nil {
		return err // nil st: ctx ended while waiting for the store
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()

	parts, err := wire(cfg, flags, st, reg, log)
	if err != nil {
		return err
	}
	// Every commit hook is registered: a shared store may deliver now.
	if s, ok := st.(interface{ Start() }); ok {
		s.Start()
	}
	parts.deps.Web = web
	parts.deps.Nodes = nodeStatus(cfg, st)
	srv := dashboard.New(cfg, parts.deps)

	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	if lost != nil {
		go func() {
			select {
			case <-lost:
				log.Error("the shared store lost its epoch; shutting down to serve again on the new one", "err", st.Err())
				stopServing()
			case <-serveCtx.Done():
			}
		}()
	}

	// Shutdown order: the server turns readiness off and drains its streams
	// while the collectors keep committing; then the collectors stop and
	// make their last commit; then the store closes (deferred).
	var wg sync.WaitGroup
	collectCtx, stopCollectors := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCollectors()
	for _, fn := range parts.background {
		wg.Go(func() {
			if err := fn(collectCtx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("background task failed", "err", err)
			}
		})
	}
	if parts.run != nil {
		wg.Go(func() {
			if err := parts.run(collectCtx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("collectors stopped", "err", err)
			}
		})
	}
	serveErr := srv.Serve(serveCtx, sock.turn())
	stopCollectors()
	wg.Wait()
	if serveErr != nil {
		return serveErr
	}
	select {
	case <-lost:
		if ctx.Err() == nil {
			return fmt.Errorf("%w: %w", errStoreLost, st.Err())
		}
	default:
	}
	log.Info("livedash stopped", "head", st.Head().String())
	return nil
}

// openStore opens the store the configuration names: the bbolt file, or the
// Redis ring when store.redis.url is set. Redis is waited for (retrying with
// backoff, the standby answering on the socket meanwhile) unless
// store.redis.require is set; the standby applies web, the web
// configuration (nil: none). lost is the Redis store's Lost channel (nil for
// bbolt). A nil store with a nil error means ctx ended while waiting. It
// calls announce once the socket is answered or about to be.
func openStore(ctx context.Context, cfg config.Config, flags serveFlags, web *dashboard.WebConfig, sock *socket, reg *prometheus.Registry, log *slog.Logger, announce func()) (st store.Store, lost <-chan struct{}, err error) {
	if !cfg.SharedStore() {
		if dir := filepath.Dir(cfg.Store.Path); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, nil, fmt.Errorf("create store directory: %w", err)
			}
		}
		b, err := bolt.Open(bolt.Options{
			Path:        cfg.Store.Path,
			MaxFrames:   cfg.Store.Retention.Frames,
			MaxAge:      cfg.Store.Retention.MaxAge.D(),
			LockTimeout: cfg.Store.LockTimeout.D(),
			MaxSize:     cfg.Store.MaxSizeBytes,
			NoSync:      cfg.Store.NoSync,
			Logger:      log.With("component", "store"),
			Registerer:  reg,
		})
		if err != nil {
			return nil, nil, err
		}
		announce()
		return b, nil, nil
	}
	if flags.store != "" {
		log.Warn("--store is unused: the store is Redis (store.redis.url)")
	}
	r := cfg.Store.Redis
	sb := startStandby(sock.turn(), cfg.Stream.Retry.D(), web, reg, log.With("component", "standby"))
	announce()
	rs, err := redis.Open(ctx, redis.Options{
		URL:          r.URL,
		KeyPrefix:    r.KeyPrefix,
		Node:         cfg.NodeName(),
		MaxFrames:    cfg.Store.Retention.Frames,
		MaxAge:       cfg.Store.Retention.MaxAge.D(),
		PoolSize:     r.PoolSize,
		DialTimeout:  r.DialTimeout.D(),
		ReadTimeout:  r.ReadTimeout.D(),
		WriteTimeout: r.WriteTimeout.D(),
		Require:      r.Require,
		Logger:       log.With("component", "store"),
		Registerer:   reg,
	})
	sb.stop()
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	return rs, rs.Lost(), nil
}

// nodeStatus reports this instance's node name and the nodes seen sharing
// its store, for /api/v1/status: from the Redis store's record of who
// appended, or just this instance with a store of its own.
func nodeStatus(cfg config.Config, st store.Store) func() dashboard.NodeStatus {
	name := cfg.NodeName()
	shared, _ := st.(interface{ Nodes() []redis.NodeSeen })
	return func() dashboard.NodeStatus {
		out := dashboard.NodeStatus{Node: name, Nodes: []dashboard.NodeSeen{}}
		if shared == nil {
			return dashboard.NodeStatus{Node: name, Nodes: []dashboard.NodeSeen{{Name: name, Head: st.Head().String()}}}
		}
		for _, n := range shared.Nodes() {
			ns := dashboard.NodeSeen{Name: n.Name, Head: store.ID{Epoch: st.Epoch(), Seq: n.Seq}.String()}
			if !n.At.IsZero() {
				at := n.At.UTC()
				ns.LastSeen = &at
			}
			out.Nodes = append(out.Nodes, ns)
		}
		slices.SortFunc(out.Nodes, func(a, b dashboard.NodeSeen) int { return strings.Compare(a.Name, b.Name) })
		return out
	}
}
