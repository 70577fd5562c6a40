package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/labstack/echo/v4"

	"livedash/dashboard/apierr"
)

// recoverPanics turns a panic in any later middleware or handler into an
// answer, so that one faulty request cannot take the process down or leave
// its client without one. The panic is logged with the route template (never
// the raw path) and the stack, and counted in livedash_http_panics_total.
//
// If nothing was written yet, the request fails with a 500 and the JSON
// error body, rendered by the error handler like any other error. If the
// response was committed, its client already has a status and maybe part of
// a body: the only honest end is to cut it, so recoverPanics panics again
// with http.ErrAbortHandler, on which net/http closes the connection
// (HTTP/1.1) or resets the stream (HTTP/2) without logging. A handler's own
// http.ErrAbortHandler panic is passed on uncounted: it is a deliberate
// abort, not a fault.
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if e, ok := v.(error); ok && errors.Is(e, http.ErrAbortHandler) {
				panic(http.ErrAbortHandler) // the value net/http compares with
			}
			route := routeOf(c)
			s.http.panics.WithLabelValues(route).Inc()
			s.log.Error("handler panicked", "route", route, "method", c.Request().Method,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if c.Response().Committed {
				panic(http.ErrAbortHandler)
			}
			// Headers describing a body the handler did not finish would be
			// wrong for the error body.
			h := c.Response().Header()
			h.Del(echo.HeaderContentLength)
			h.Del(echo.HeaderContentEncoding)
			h.Del("ETag")
			err = apierr.New(http.StatusInternalServerError, "internal_error", "internal error; see the server log")
		}()
		return next(c)
	}
}
