package dashboard_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"livedash/config"
	"livedash/dashboard"
	"livedash/dashboard/apierr"
	"livedash/dashboard/store/storetest"
)

// Push, append failure: with the store's appends failing, a valid push is
// answered 503 store_unavailable in the JSON error shape (no Go error text),
// counted under that code, and nothing is stored; /readyz turns 503
// store_unwritable meanwhile. Once appends succeed again, the same push is
// stored and the server is ready.
func TestPushAppendFailure503(t *testing.T) {
	var f *storetest.Faulty
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		f = storetest.NewFaulty(d.Store)
		d.Store = f
		wireAll(t, c, d)
	})
	push := func() (int, apierr.Body) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, h.url+"/api/v1/push/jobs", strings.NewReader(`{"queue_depth":3}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+pushToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b apierr.Body
		_ = json.NewDecoder(resp.Body).Decode(&b)
		return resp.StatusCode, b
	}
	head := h.store.Head()
	f.Fail(storetest.OpAppend)
	if st, b := push(); st != 503 || b.Error.Code != "store_unavailable" || strings.Contains(b.Error.Message, "injected") {
		t.Fatalf("push, appends failing: %d %+v", st, b)
	}
	if h.store.Head() != head {
		t.Fatalf("head moved to %v on a failed push", h.store.Head())
	}
	if v := metricValue(t, h, `livedash_push_requests_total{code="store_unavailable"}`); v != 1 {
		t.Fatalf("push requests counted under store_unavailable: %v", v)
	}
	if resp, body := get(t, h.url+"/readyz"); resp.StatusCode != 503 || !strings.Contains(body, "store_unwritable") {
		t.Fatalf("readyz, appends failing: %d %s", resp.StatusCode, body)
	}
	f.Heal(storetest.OpAppend)
	if st, b := push(); st != 200 {
		t.Fatalf("push, healed: %d %+v", st, b)
	}
	if h.store.Head().Seq != head.Seq+1 {
		t.Fatalf("head %v after a push, want seq %d", h.store.Head(), head.Seq+1)
	}
	if resp, body := get(t, h.url+"/readyz"); resp.StatusCode != 200 {
		t.Fatalf("readyz, healed: %d %s", resp.StatusCode, body)
	}
}
