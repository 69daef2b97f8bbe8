package aiproxy_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// gatedListProvider answers GET /v1/models with ids (404 with none, as a
// host without a list endpoint) once release is closed, counting fetches
// and telling each one's arrival on entered.
func gatedListProvider(t *testing.T, ids ...string) (srv *httptest.Server, fetches *atomic.Int64, entered chan struct{}, release chan struct{}) {
	fetches = new(atomic.Int64)
	entered, release = make(chan struct{}, 64), make(chan struct{})
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		if r.URL.Path != "/v1/models" || len(ids) == 0 {
			http.NotFound(w, r)
			return
		}
		var data []string
		for _, id := range ids {
			data = append(data, fmt.Sprintf(`{"id":%q,"object":"model","created":1,"owned_by":"them"}`, id))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[%s]}`, strings.Join(data, ","))
	}))
	t.Cleanup(srv.Close)
	return srv, fetches, entered, release
}

// TestModelListFetchOutlivesItsClient: a client that gives up on
// GET /v1/models does not cut the host's fetch short, nor leave a failure
// in its place: the next list has the host's models.
func TestModelListFetchOutlivesItsClient(t *testing.T) {
	groq, _, entered, release := gatedListProvider(t, "llama-3.1-8b")
	s := startSite(t, siteOptions{})
	s.load(siteOptions{extra: fmt.Sprintf(`host groq.test {
			base_url %s
			key sk-groq
			models llama-*
		}`, groq.URL)})
	key := s.register("ann")

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", siteURL+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	done := make(chan struct{})
	go func() {
		if res, err := s.client.Do(req); err == nil {
			res.Body.Close()
		}
		close(done)
	}()
	<-entered // the fetch is under way
	cancel()
	<-done // the client gave up
	close(release)

	code, _, out := s.request("GET", "/v1/models", nil, "Authorization", "Bearer "+key)
	if code != 200 || !strings.Contains(string(out), "llama-3.1-8b") {
		t.Fatalf("after one impatient client, the host's models are gone from the list: %d %s", code, out)
	}
}

// TestModelListFetchedOnce: concurrent GET /v1/models on a cold cache
// fetch each host's list once, the hosts at the same time.
func TestModelListFetchedOnce(t *testing.T) {
	a, na, enteredA, releaseA := gatedListProvider(t, "llama-3.1-8b")
	b, nb, enteredB, releaseB := gatedListProvider(t, "mistral-large")
	s := startSite(t, siteOptions{})
	s.load(siteOptions{extra: fmt.Sprintf(`host a.test {
			base_url %s
			key sk-a
			models llama-*
		}
		host b.test {
			base_url %s
			key sk-b
			models mistral-*
		}`, a.URL, b.URL)})
	key := s.register("ann")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			s.request("GET", "/v1/models", nil, "Authorization", "Bearer "+key)
		})
	}
	// Both fetches run together: each has arrived before either answers.
	<-enteredA
	<-enteredB
	close(releaseA)
	close(releaseB)
	wg.Wait()
	if na.Load() != 1 || nb.Load() != 1 {
		t.Fatalf("20 concurrent list requests fetched host a %d times and host b %d times; want once each", na.Load(), nb.Load())
	}
}
