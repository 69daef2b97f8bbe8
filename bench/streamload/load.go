package main

// load.go: opens many streams at once through a proxy and reports the
// proxy process's memory and goroutines, and each chunk's time from the
// provider to the client.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type loadConfig struct {
	url      string // the chat completions URL
	key      string
	streams  int
	chunks   int
	interval time.Duration
	cancel   float64 // the share of streams the client cancels halfway
	pid      int     // the proxy's process: its RSS
	admin    string  // the proxy's Caddy admin address: go_goroutines
	provider string  // the mock provider's base URL: close-idle
	profiles string  // where heap and goroutine profiles go, with every stream open (this collects garbage)
}

func runLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	c := &loadConfig{}
	fs.StringVar(&c.url, "url", "http://127.0.0.1:18291/v1/chat/completions", "chat completions URL")
	fs.StringVar(&c.key, "key", "", "bearer key (none: no Authorization header)")
	fs.IntVar(&c.streams, "streams", 1000, "streams open at once")
	fs.IntVar(&c.chunks, "chunks", 1000, "content chunks per stream")
	fs.DurationVar(&c.interval, "interval", 50*time.Millisecond, "time between a stream's chunks")
	fs.Float64Var(&c.cancel, "cancel", 0, "share of streams the client cancels halfway (0 to 1)")
	fs.IntVar(&c.pid, "pid", 0, "the proxy's process ID, for its RSS (0: not measured)")
	fs.StringVar(&c.admin, "admin", "", "the proxy's Caddy admin URL, for go_goroutines (empty: not measured)")
	fs.StringVar(&c.provider, "provider", "", "the mock provider's base URL, to close its idle connections")
	fs.StringVar(&c.profiles, "profiles", "", "directory for heap, goroutine and CPU profiles taken with every stream open (a forced collection: lowers the peak)")
	_ = fs.Parse(args)
	return c.run()
}

// proc is what is measured of the proxy's process at one moment.
type proc struct {
	rssKiB     int64
	goroutines int64
	heapInuse  int64 // bytes
	stackInuse int64 // bytes
}

func (c *loadConfig) run() error {
	client := &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   c.streams,
		DisableCompression:    true,
		ResponseHeaderTimeout: 60 * time.Second,
	}}
	// Warm up: the proxy's pools and first-request setup are not the streams'.
	for range 3 {
		if r := c.stream(context.Background(), client, 2, time.Millisecond, -1, nil); r.err != nil {
			return fmt.Errorf("warm-up stream: %v", r.err)
		}
	}
	idle, err := c.settle(client, -1)
	if err != nil {
		return err
	}
	c.print("idle", idle)

	ticks := cpuTicks(c.pid)
	res, open, peak := c.streamAll(client)
	ticks = cpuTicks(c.pid) - ticks
	c.print("open", open)
	fmt.Printf("rss_peak_kib %d\n", peak)
	c.report(res)
	if c.pid > 0 {
		fmt.Printf("cpu_us_per_chunk %.1f\n", float64(ticks)*1e6/userHZ/float64(max(1, c.streams*c.chunks)))
	}

	after, err := c.settle(client, idle.goroutines)
	if err != nil {
		return err
	}
	c.print("after", after)
	return nil
}

// streamAll runs every stream and returns their results, the proxy
// measured as soon as every stream had its first chunk, and its peak RSS
// while they all were open.
func (c *loadConfig) streamAll(client *http.Client) ([]streamResult, proc, int64) {
	results := make([]streamResult, c.streams)
	var opened sync.WaitGroup
	opened.Add(c.streams)
	var active atomic.Int64
	active.Store(int64(c.streams))
	var wg sync.WaitGroup
	start := time.Now()
	for i := range c.streams {
		cancelAt := -1
		if float64(i) < c.cancel*float64(c.streams) {
			cancelAt = c.chunks / 2
		}
		wg.Go(func() {
			var once sync.Once
			results[i] = c.stream(context.Background(), client, c.chunks, c.interval, cancelAt, func() { once.Do(opened.Done) })
			once.Do(opened.Done) // a stream that failed before its first chunk
			active.Add(-1)
		})
	}
	opened.Wait()
	fmt.Printf("open_after_ms %d\n", time.Since(start).Milliseconds())
	open := c.measure()
	if c.profiles != "" {
		// The heap profile is taken after a collection: the heap in use
		// then is what the open streams hold, without garbage.
		c.saveProfiles()
		c.print("open_after_gc", c.measure())
	}
	peak := open.rssKiB
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-finished:
			return results, open, peak
		case <-tick.C:
			if active.Load() == int64(c.streams) && c.pid > 0 {
				peak = max(peak, rss(c.pid))
			}
		}
	}
}

// streamResult is what one stream saw.
type streamResult struct {
	latencies []time.Duration // of each content chunk
	chunks    int
	canceled  bool
	err       error
}

// stream sends one streaming chat completion of chunks chunks and reads it
// to its end; the client leaves after cancelAt chunks when cancelAt >= 0.
// opened, if set, is called at the first content chunk.
func (c *loadConfig) stream(ctx context.Context, client *http.Client, chunks int, interval time.Duration, cancelAt int, opened func()) streamResult {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := c.url + "?" + url.Values{"chunks": {strconv.Itoa(chunks)}, "interval": {interval.String()}}.Encode()
	req, err := http.NewRequestWithContext(ctx, "POST", u,
		strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello there"}]}`))
	if err != nil {
		return streamResult{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	res, err := client.Do(req)
	if err != nil {
		return streamResult{err: err}
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return streamResult{err: fmt.Errorf("status %d: %s", res.StatusCode, b)}
	}
	r := streamResult{latencies: make([]time.Duration, 0, chunks)}
	br := bufio.NewReader(res.Body)
	marker := []byte(`"content":"`)
	for {
		line, err := br.ReadSlice('\n')
		now := time.Now()
		if i := bytes.Index(line, marker); i >= 0 {
			digits := line[i+len(marker):]
			if j := bytes.IndexByte(digits, ' '); j > 0 {
				if sent, perr := strconv.ParseInt(string(digits[:j]), 10, 64); perr == nil {
					r.latencies = append(r.latencies, now.Sub(time.Unix(0, sent)))
					r.chunks++
					if r.chunks == 1 && opened != nil {
						opened()
					}
					if r.chunks == cancelAt {
						r.canceled = true
						return r
					}
				}
			}
		}
		if bytes.HasPrefix(line, []byte("data: [DONE]")) {
			break
		}
		if err != nil {
			r.err = err
			return r
		}
	}
	if r.chunks != chunks {
		r.err = fmt.Errorf("%d chunks of %d", r.chunks, chunks)
	}
	return r
}

// report prints the streams' outcome and the chunks' latency percentiles.
func (c *loadConfig) report(results []streamResult) {
	var all []time.Duration
	var failed, canceled, chunks int
	var firstErr error
	for _, r := range results {
		all = append(all, r.latencies...)
		chunks += r.chunks
		switch {
		case r.err != nil:
			failed++
			if firstErr == nil {
				firstErr = r.err
			}
		case r.canceled:
			canceled++
		}
	}
	fmt.Printf("streams %d canceled %d failed %d chunks %d\n", len(results), canceled, failed, chunks)
	if firstErr != nil {
		fmt.Printf("first_error %q\n", firstErr.Error())
	}
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	q := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	fmt.Printf("latency_ms p50 %.3f p90 %.3f p99 %.3f p999 %.3f max %.3f\n",
		q(0.50), q(0.90), q(0.99), q(0.999), float64(all[len(all)-1].Microseconds())/1000)
}

// settle closes the idle connections on both sides of the proxy, then
// waits until the proxy's goroutines are down to want (want < 0: until
// they stop falling) or 30 seconds have passed, and measures it.
func (c *loadConfig) settle(client *http.Client, want int64) (proc, error) {
	client.CloseIdleConnections()
	if c.provider != "" {
		res, err := http.Post(c.provider+"/close-idle", "text/plain", nil)
		if err != nil {
			return proc{}, fmt.Errorf("provider close-idle: %v", err)
		}
		res.Body.Close()
	}
	if c.admin == "" {
		return c.measure(), nil
	}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := int64(-1)
	for {
		n := goroutines(c.admin)
		if want >= 0 && n <= want || want < 0 && n == last || time.Now().After(deadline) {
			return c.measure(), nil
		}
		last = n
		<-tick.C
	}
}

func (c *loadConfig) measure() proc {
	var p proc
	if c.pid > 0 {
		p.rssKiB = rss(c.pid)
	}
	if c.admin != "" {
		m := metrics(c.admin)
		p.goroutines, p.heapInuse, p.stackInuse = m["go_goroutines"], m["go_memstats_heap_inuse_bytes"], m["go_memstats_stack_inuse_bytes"]
	}
	return p
}

func (c *loadConfig) print(when string, p proc) {
	fmt.Printf("%s rss_kib %d goroutines %d heap_inuse_kib %d stack_inuse_kib %d\n",
		when, p.rssKiB, p.goroutines, p.heapInuse>>10, p.stackInuse>>10)
}

// saveProfiles fetches the proxy's heap and goroutine profiles, and a CPU
// profile of 5 seconds.
func (c *loadConfig) saveProfiles() {
	for name, path := range map[string]string{
		"heap.pb.gz":     "/debug/pprof/heap?gc=1",
		"goroutines.txt": "/debug/pprof/goroutine?debug=1",
		"cpu.pb.gz":      "/debug/pprof/profile?seconds=5", // while the streams run
	} {
		res, err := http.Get(c.admin + path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
			continue
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if err := os.WriteFile(filepath.Join(c.profiles, name), b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
		}
	}
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat on Linux.
const userHZ = 100

// cpuTicks returns a process's CPU time so far (user and system), in
// 1/userHZ seconds, or 0.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command, which is in parentheses and may hold spaces.
	_, rest, _ := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

// rss returns a process's resident set size in KiB (VmRSS), or -1.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// goroutines returns go_goroutines from the admin's /metrics, or -1.
func goroutines(admin string) int64 {
	if n, ok := metrics(admin)["go_goroutines"]; ok {
		return n
	}
	return -1
}

// metrics reads the unlabelled gauges of a Prometheus text page.
func metrics(admin string) map[string]int64 {
	m := map[string]int64{}
	res, err := http.Get(admin + "/metrics")
	if err != nil {
		return m
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(value, 64); err == nil {
			m[name] = int64(f)
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(os.Stderr, "metrics:", err)
	}
	return m
}
