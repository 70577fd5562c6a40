// Command livedash samples host and application metrics, keeps a bounded,
// durable history of them, and serves them to browsers (SSE), scripts (JSON)
// and Prometheus. main stays thin: everything is in run, which tests call.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// signalEcho is how long after the first signal a second one is taken as a
// copy of it rather than as "stop now": `make run` in a shell's background
// job gets the job's SIGTERM and make relays it to livedash, so the one
// request to stop arrives twice within a moment.
const signalEcho = time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// A second signal kills at once (the default action), unless it is the
	// echo of the first.
	context.AfterFunc(ctx, func() { time.AfterFunc(signalEcho, stop) })
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitError carries a process exit status: 2 for usage and configuration
// mistakes (nothing was started), 1 for everything else.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// parseFlags parses args into fs. -h or -help prints the usage to stdout
// and reports help (exit 0); a bad flag prints the usage to stderr and
// returns an exit-2 error naming the flag (printed once, by main).
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (help bool, err error) {
	fs.SetOutput(io.Discard) // the flag package would print the message and usage itself
	err = fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		fs.SetOutput(stderr)
		return true, nil
	case err != nil:
		fs.Usage()
		return false, &exitError{2, err}
	}
	return false, nil
}

func usageErr(format string, args ...any) error {
	return &exitError{2, fmt.Errorf(format, args...)}
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "livedash:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

const usage = `livedash — a live metrics dashboard

Usage:
  livedash [serve] [flags]        run the server (default)
  livedash config check [--config F]
                                  validate a configuration, list every problem
  livedash tail [flags]           print frames from a server as JSON lines
  livedash healthcheck [--url U]  exit 0 when a server answers /readyz with 200
  livedash version                print the version, commit and build date
  livedash help                   print this help

Run "livedash <command> -h" for a command's flags.
`

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// printHelp prints the commands, then the flags of serve, the default
// command.
func printHelp(w io.Writer) {
	fmt.Fprint(w, usage)
	fmt.Fprint(w, "\nFlags of serve:\n")
	fs, _ := serveFlagSet()
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// run is the whole program; main only adds signals and the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		printHelp(stdout)
		return nil
	}
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, args, stdout, stderr)
	case "config":
		if len(args) == 0 || args[0] != "check" {
			return usageErr("usage: livedash config check [--config F]")
		}
		return runConfigCheck(args[1:], stdout, stderr)
	case "tail":
		return runTail(ctx, args, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "livedash", version())
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageErr("unknown command %q", cmd)
}
