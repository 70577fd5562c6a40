package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// standby answers on the socket while the store cannot be opened yet (Redis
// unreachable at start, or reconnecting after it lost its data), so that
// health checks and clients get answers instead of a hanging connect:
//
//   - /healthz 200: the process is alive;
//   - /readyz 503 store_unavailable: load balancers send clients elsewhere;
//   - /api/v1/stream 200 with only a retry: hint, then closed: an
//     EventSource treats any other status as final and would stop
//     reconnecting, while this one comes back after the hint;
//   - /metrics: the registry (the store's connection attempts are counted);
//   - everything else 503 store_unavailable with Retry-After.
//
// Every answer closes its connection, so no client stays attached to the
// standby when the server takes over.
type standby struct {
	srv  *http.Server
	done chan struct{}
}

func startStandby(t *turn, retry time.Duration, reg *prometheus.Registry, log *slog.Logger) *standby {
	retryMS := strconv.FormatInt(retry.Milliseconds(), 10)
	retrySec := strconv.FormatInt(max(1, int64(retry/time.Second)), 10)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	unavailable := func(w http.ResponseWriter, code string) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", retrySec)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"error":{"code":%q,"message":"the store is not reachable yet; see the server log"}}`+"\n", code)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Header().Set("Cache-Control", "no-store")
		switch r.URL.Path {
		case "/healthz":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintln(w, `{"status":"ok"}`)
		case "/metrics":
			metrics.ServeHTTP(w, r)
		case "/api/v1/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("X-Accel-Buffering", "no")
			fmt.Fprintf(w, ": the store is not reachable yet\nretry: %s\n\n", retryMS)
		default:
			unavailable(w, "store_unavailable")
		}
	})
	sb := &standby{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
		done: make(chan struct{}),
	}
	sb.srv.SetKeepAlivesEnabled(false)
	go func() {
		defer close(sb.done)
		if err := sb.srv.Serve(t); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("standby server", "err", err)
		}
	}()
	return sb
}

// stop ends the standby's turn on the socket and waits for its answers in
// progress (each is a few bytes) to finish.
func (sb *standby) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := sb.srv.Shutdown(ctx); err != nil {
		_ = sb.srv.Close()
	}
	<-sb.done
}
