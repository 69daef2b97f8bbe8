package aiproxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiproxy/aiproxy/internal/mockopenai"
)

// TestStreamsLeaveNoGoroutine: once many streams have ended, whether they
// ran to their end, their client left mid-stream or left before the answer
// began, the process holds no goroutine more than before them: none waits
// on a stream, a meter, a settlement or a connection that is gone.
func TestStreamsLeaveNoGoroutine(t *testing.T) {
	s := startSite(t, siteOptions{})
	key := s.register("streamer")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	// Idle keep-alive connections hold goroutines on every side: the
	// client's, Caddy's and the provider's. Closed, all of them end.
	closeIdle := func() {
		client.CloseIdleConnections()
		s.client.CloseIdleConnections()
		s.upstream.CloseClientConnections()
	}

	// One stream of each kind first, so that what starts once (pools, the
	// usage writer) is counted before.
	if err := streamToEnd(client, key); err != nil {
		t.Fatal(err)
	}
	leaveMidStream(t, s, client, key, 1)
	leaveBeforeAnswer(t, s, client, key, 1)
	closeIdle()
	before, _ := waitGoroutines(t, steady())

	const n = 100
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := streamToEnd(client, key); err != nil {
				t.Error(err)
			}
		})
	}
	leaveMidStream(t, s, client, key, n)
	leaveBeforeAnswer(t, s, client, key, n)
	wg.Wait()
	closeIdle()
	if after, ok := waitGoroutines(t, func(g int) bool { return g <= before }); !ok {
		var dump strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
		t.Fatalf("%d goroutines after %d streams of each kind ended, %d before:\n%s", after, n, before, dump.String())
	}
}

// newChatRequest is a streaming chat completion of model with key; the
// client leaves when ctx ends.
func newChatRequest(ctx context.Context, key, model string, stream bool) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, "POST", siteURL+"/v1/chat/completions", strings.NewReader(
		fmt.Sprintf(`{"model":%q,"stream":%t,"messages":[{"role":"user","content":"one two three four"}]}`, model, stream)))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	return req
}

// streamToEnd reads a whole stream, to its [DONE].
func streamToEnd(client *http.Client, key string) error {
	res, err := client.Do(newChatRequest(context.Background(), key, "gpt-4o-mini", true))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 || !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
		return fmt.Errorf("stream: %d %v %q", res.StatusCode, err, body)
	}
	return nil
}

// leaveMidStream opens n streams that each stop at the gate after their
// first content chunk, reads that chunk from each, and leaves them all;
// it returns once the provider saw every one cancelled.
func leaveMidStream(t *testing.T, s *site, client *http.Client, key string, n int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	read := make(chan struct{}, n) // a stream's first content chunk has reached the client
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			res, err := client.Do(newChatRequest(ctx, key, mockopenai.ModelGated, true))
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			rd := bufio.NewReader(res.Body)
			for range 4 { // the role chunk and the first content chunk, each a line and a blank one
				if _, err := rd.ReadString('\n'); err != nil {
					t.Error(err)
					return
				}
			}
			read <- struct{}{}
			<-ctx.Done()
		})
	}
	signals(t, read, n, "streams read up to the gate")
	signals(t, s.upstream.GateWaiting(), n, "streams waiting at the gate")
	cancel()
	signals(t, s.upstream.Canceled(), n, "streams cancelled upstream")
	wg.Wait()
}

// leaveBeforeAnswer sends n requests that the provider holds at the gate
// before it answers, and leaves them all there.
func leaveBeforeAnswer(t *testing.T, s *site, client *http.Client, key string, n int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if res, err := client.Do(newChatRequest(ctx, key, mockopenai.ModelGated, false)); err == nil {
				res.Body.Close()
				t.Errorf("an answer came before the gate opened: %d", res.StatusCode)
			}
		})
	}
	signals(t, s.upstream.GateWaiting(), n, "requests waiting at the gate")
	cancel()
	signals(t, s.upstream.Canceled(), n, "requests cancelled upstream")
	wg.Wait()
}

// signals receives n values from ch, failing after 10 seconds without one.
func signals(t *testing.T, ch <-chan struct{}, n int, what string) {
	t.Helper()
	for i := range n {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d %s", i, n, what)
		}
	}
}

// waitGoroutines polls the number of goroutines until done holds of it,
// for at most 10 seconds, and returns the last number and whether it did.
func waitGoroutines(t *testing.T, done func(int) bool) (int, bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		n := runtime.NumGoroutine()
		if done(n) {
			return n, true
		}
		select {
		case <-deadline.C:
			return n, false
		case <-tick.C:
		}
	}
}

// steady holds once the number of goroutines has stayed the same over 20
// polls in a row: connections being closed have ended theirs.
func steady() func(int) bool {
	last, same := -1, 0
	return func(n int) bool {
		if n == last {
			same++
		} else {
			last, same = n, 0
		}
		return same >= 20
	}
}
