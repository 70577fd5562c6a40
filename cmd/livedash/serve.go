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
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	promcollectors "github.com/prometheus/client_golang/prometheus/collectors"
	"go.yaml.in/yaml/v3"

	"livedash/config"
	"livedash/dashboard"
	"livedash/dashboard/store/bolt"
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

	if dir := filepath.Dir(cfg.Store.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("create store directory: %w", err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(promcollectors.NewGoCollector(), promcollectors.NewProcessCollector(promcollectors.ProcessCollectorOpts{}))

	store, err := bolt.Open(bolt.Options{
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
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()

	parts, err := wire(cfg, flags, store, reg, log)
	if err != nil {
		return err
	}
	parts.deps.Web = web
	srv := dashboard.New(cfg, parts.deps)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	scheme := "http"
	if web != nil && web.TLS != nil {
		scheme = "https"
	}
	log.Info("livedash listening", "addr", ln.Addr().String(), "url", scheme+"://"+ln.Addr().String()+"/",
		"version", version(), "store", cfg.Store.Path, "tls", scheme == "https", "login", web != nil && len(web.Users) > 0)
	warnExposure(log, cfg, web)
	if hook, ok := ctx.Value(listenHookKey{}).(func(string)); ok {
		hook(ln.Addr().String())
	}

	// Shutdown order: the server turns readiness off and drains
	// its streams while the collectors keep committing; then the collectors
	// stop and make their last commit; then the store closes (deferred).
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
	serveErr := srv.Serve(ctx, ln)
	stopCollectors()
	wg.Wait()
	if serveErr != nil {
		return serveErr
	}
	log.Info("livedash stopped", "head", store.Head().String())
	return nil
}
