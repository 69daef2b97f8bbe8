package aiproxy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

// TestLargeBodyNotRoutedToDefault: with routing by model on, a body too
// large to read for its model gets 413 instead of going to the default
// upstream, which may be a third party the model's own host was chosen
// to avoid.
func TestLargeBodyNotRoutedToDefault(t *testing.T) {
	s := startSite(t, siteOptions{})
	local := mockopenai.New(t, "sk-local")
	s.load(siteOptions{extra: fmt.Sprintf(`host local.test {
			base_url %s
			key sk-local
			models local-*
		}`, local.URL)})
	key := s.register("ann")
	before := len(s.upstream.Requests())
	big := chatBody("local-model", strings.Repeat("confidential ", 17<<20/13))
	s.request("POST", "/v1/chat/completions", strings.NewReader(big),
		"Authorization", "Bearer "+key, "Content-Type", "application/json")
	if n := len(s.upstream.Requests()) - before; n != 0 {
		t.Fatalf("a %d MiB request for local-model went to the default upstream (%d request), not local.test (%d)",
			len(big)>>20, n, len(local.Requests()))
	}
}
