package main

// requests.go: a long run of short JSON chat completions, with the proxy's
// RSS sampled every so many requests.

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func runRequests(args []string) error {
	fs := flag.NewFlagSet("requests", flag.ExitOnError)
	target := fs.String("url", "http://127.0.0.1:18291/v1/chat/completions", "chat completions URL")
	key := fs.String("key", "", "bearer key")
	n := fs.Int64("n", 100000, "requests in all")
	every := fs.Int64("every", 10000, "RSS is sampled every this many requests")
	conns := fs.Int("c", 32, "connections")
	pid := fs.Int("pid", 0, "the proxy's process ID, for its RSS")
	admin := fs.String("admin", "", "the proxy's Caddy admin URL, for go_goroutines")
	_ = fs.Parse(args)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conns, DisableCompression: true}}
	var next, failed atomic.Int64
	var mu sync.Mutex // one sample printed at a time, in order
	start := time.Now()
	fmt.Printf("requests rss_kib goroutines req/s failed\n")
	fmt.Printf("0 %d %d - 0\n", rss(*pid), goroutines(*admin))
	var wg sync.WaitGroup
	for range *conns {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > *n {
					return
				}
				if !post(client, *target, *key) {
					failed.Add(1)
				}
				if i%*every == 0 || i == *n {
					mu.Lock()
					fmt.Printf("%d %d %d %.0f %d\n", i, rss(*pid), goroutines(*admin),
						float64(i)/time.Since(start).Seconds(), failed.Load())
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d requests failed", f)
	}
	return nil
}

// post sends one short chat completion and reports whether it got a 200.
func post(client *http.Client, target, key string) bool {
	req, err := http.NewRequest("POST", target, strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}`))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}
