package apierr

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The body is the contract's error shape, byte for byte, and carries the
// message only: the internal cause stays in logs.
func TestBodyShape(t *testing.T) {
	e := &Error{Status: http.StatusInternalServerError, Code: "internal_error",
		Message: "internal error; see the server log", Err: errors.New("bbolt: /var/lib/x.db: input/output error")}
	got, err := json.Marshal(BodyOf(e))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"error":{"code":"internal_error","message":"internal error; see the server log"}}`
	if string(got) != want {
		t.Fatalf("body %s\nwant %s", got, want)
	}
	// A client decoding the body gets both fields back.
	var b Body
	if err := json.Unmarshal(got, &b); err != nil || b.Error.Code != e.Code || b.Error.Message != e.Message {
		t.Fatalf("decoded %+v, %v", b, err)
	}
}

func TestConstructors(t *testing.T) {
	for _, tc := range []struct {
		e                   *Error
		status              int
		code, message, text string
	}{
		{New(http.StatusNotFound, "not_found", "no route %s", "/api/v2"),
			404, "not_found", "no route /api/v2", "not_found: no route /api/v2"},
		{BadParam("limit", "%d is over the maximum %d", 20000, 10000),
			400, "invalid_parameter", "parameter limit: 20000 is over the maximum 10000",
			"invalid_parameter: parameter limit: 20000 is over the maximum 10000"},
		// A literal % in a message needs no arguments.
		{New(http.StatusBadRequest, "bad", "100%% sure"), 400, "bad", "100% sure", "bad: 100% sure"},
	} {
		if tc.e.Status != tc.status || tc.e.Code != tc.code || tc.e.Message != tc.message || tc.e.Err != nil {
			t.Errorf("got %+v, want %d %s %q", tc.e, tc.status, tc.code, tc.message)
		}
		if tc.e.Error() != tc.text {
			t.Errorf("Error() = %q, want %q", tc.e.Error(), tc.text)
		}
	}
}

// Error() adds the cause for logs, and errors.Is/As see through the wrap.
func TestCause(t *testing.T) {
	e := BadParam("after", "not a frame ID")
	e.Err = fs.ErrNotExist
	if want := "invalid_parameter: parameter after: not a frame ID: " + fs.ErrNotExist.Error(); e.Error() != want {
		t.Fatalf("Error() = %q, want %q", e.Error(), want)
	}
	var wrapped error = e
	if !errors.Is(wrapped, fs.ErrNotExist) {
		t.Fatal("errors.Is does not reach the cause")
	}
	var got *Error
	if !errors.As(errors.Join(errors.New("context"), wrapped), &got) || got != e {
		t.Fatal("errors.As does not find the *Error")
	}
}
