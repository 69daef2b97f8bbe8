package mockopenai

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

const testKey = "sk-provider-test-key-0123456789"

// deadline bounds every wait on a channel; it is a failure deadline, not
// a synchronisation sleep.
const deadline = 10 * time.Second

func sdkClient(o *Server, key string) openai.Client {
	return openai.NewClient(
		option.WithBaseURL(o.URL+"/v1/"),
		option.WithAPIKey(key),
		option.WithHTTPClient(o.Client()),
		option.WithMaxRetries(0),
	)
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(deadline):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// post sends a JSON body with the mock's key.
func post(t *testing.T, ctx context.Context, o *Server, path, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// sseData reads the next event of an SSE stream, through its blank line,
// and returns its "data:" payload.
func sseData(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading stream: %v", err)
		}
		if data, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "data: "); ok {
			if end, err := br.ReadString('\n'); err != nil || end != "\n" { // the event's blank line
				t.Fatalf("event not ended by a blank line: %q %v", end, err)
			}
			return data
		}
	}
}
