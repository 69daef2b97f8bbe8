package aiproxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestSkipLogIfAdminTokenDoesNotAllocate(t *testing.T) {
	h := &Handler{AdminToken: "an-admin-token-of-some-length"}
	r := httptest.NewRequest("POST", "/v1/chat/completions?x=1", nil)
	r.Header.Set("Referer", "https://chat.example/some/page/of/the/app")
	var url2 = *r.URL
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey,
		http.Request{Method: r.Method, RequestURI: r.RequestURI, URL: &url2}))
	if n := testing.AllocsPerRun(100, func() { h.skipLogIfAdminToken(r) }); n != 0 {
		t.Fatalf("skipLogIfAdminToken allocates %v times per ordinary request", n)
	}
}
