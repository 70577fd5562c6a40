package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"livedash/dashboard"
	"livedash/dashboard/apierr"
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
//
// The web configuration applies as on the server: its TLS (the socket never
// speaks plain HTTP when TLS is configured), its response headers, its
// rate_limit and its login — with users, every path but /healthz and
// /readyz answers 401 without their credentials, /metrics included.
type standby struct {
	srv  *http.Server
	done chan struct{}
}

// startStandby serves on t until stop; web is the web configuration (nil
// when there is none).
func startStandby(t *turn, retry time.Duration, web *dashboard.WebConfig, reg *prometheus.Registry, log *slog.Logger) *standby {
	if web == nil {
		web = &dashboard.WebConfig{}
	}
	// The standby's own credential cache: the server builds its own when it
	// takes over. The standby's comparisons are not counted, as the metric
	// belongs to the server and is registered in the same registry.
	var auth *dashboard.Authenticator
	if len(web.Users) > 0 {
		auth = dashboard.NewAuthenticator(web.Users, nil)
	}
	retryMS := strconv.FormatInt(retry.Milliseconds(), 10)
	retrySec := strconv.FormatInt(max(1, int64(retry/time.Second)), 10)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range web.Headers {
			h.Set(k, v)
		}
		h.Set("Connection", "close")
		h.Set("Cache-Control", "no-store")
		if !dashboard.PublicPath(r.URL.Path) {
			ae := web.LimitRate(h)
			if ae == nil && auth != nil {
				ae = auth.Authorize(r, h)
			}
			if ae != nil {
				writeError(w, ae)
				return
			}
		}
		switch r.URL.Path {
		case "/healthz":
			h.Set("Content-Type", "application/json")
			fmt.Fprintln(w, `{"status":"ok"}`)
		case "/metrics":
			metrics.ServeHTTP(w, r)
		case "/api/v1/stream":
			h.Set("Content-Type", "text/event-stream")
			h.Set("Cache-Control", "no-cache")
			h.Set("X-Accel-Buffering", "no")
			fmt.Fprintf(w, ": the store is not reachable yet\nretry: %s\n\n", retryMS)
		default:
			h.Set("Retry-After", retrySec)
			writeError(w, apierr.New(http.StatusServiceUnavailable, "store_unavailable", "the store is not reachable yet; see the server log"))
		}
	})
	// HTTP/1.1 only, over TLS too, whatever http2 says: closing the
	// connection after one answer is what HTTP/1.1's Connection: close
	// means. HTTP/2 has no such header; Go's HTTP/2 server turns it into a
	// GOAWAY instead, which still serves the streams a client opened before
	// it and keeps the connection up to a second longer. Every HTTP/2
	// client offers http/1.1 as well in the TLS handshake, and gets HTTP/2
	// again on its next connection, to the server.
	var protos http.Protocols
	protos.SetHTTP1(true)
	sb := &standby{
		srv: &http.Server{
			Handler:           mux,
			TLSConfig:         web.TLS, // ServeTLS works on a copy
			Protocols:         &protos,
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
		var err error
		if web.TLS != nil {
			err = sb.srv.ServeTLS(t, "", "")
		} else {
			err = sb.srv.Serve(t)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("standby server", "err", err)
		}
	}()
	return sb
}

// writeError answers ae as the server does: its status and
// {"error":{"code","message"}} (net/http sends no body to a HEAD).
func writeError(w http.ResponseWriter, ae *apierr.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ae.Status)
	_ = json.NewEncoder(w).Encode(apierr.BodyOf(ae))
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
