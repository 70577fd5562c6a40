// Package apierr is the one error type every livedash HTTP handler returns for a
// client-visible failure. The server's HTTPErrorHandler renders it as
//
//	{"error":{"code":"<machine_code>","message":"<human text>"}}
//
// with Status as the HTTP status. Messages are written for people and never
// carry Go error text: wrap the cause in Err for logs only.
package apierr

import (
	"fmt"
	"net/http"
)

// Error is a client-visible API error.
type Error struct {
	Status  int    // HTTP status, 4xx or 5xx
	Code    string // stable machine code, snake_case
	Message string // human text; names the parameter and the allowed range
	Err     error  // internal cause, logged, never sent
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an Error with a formatted message.
func New(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// BadParam is the 400 for a query parameter that is malformed or out of range.
func BadParam(name, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_parameter",
		Message: "parameter " + name + ": " + fmt.Sprintf(format, args...)}
}

// Body is the JSON shape of an error response.
type Body struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// BodyOf returns the response body for e.
func BodyOf(e *Error) Body {
	var b Body
	b.Error.Code, b.Error.Message = e.Code, e.Message
	return b
}
