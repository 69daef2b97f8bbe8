package aiproxy

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestNextTriesEveryUntriedKey: the next try goes to a key not tried yet
// whenever there is one, however far other requests move the host's
// rotation meanwhile.
func TestNextTriesEveryUntriedKey(t *testing.T) {
	u := &host{name: "h", keys: []string{"A", "B"}, next: new(atomic.Uint64)}
	health := newKeyHealth()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 { // other requests picking keys
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				u.pickKey()
			}
		}()
	}
	missed := 0
	for range 100000 {
		plan := attempts{health: health, host: u, first: keyRef{"h", "A"}, n: 1, max: 3, start: time.Now()}
		if !plan.more() {
			t.Fatal("more() is false")
		}
		if _, ok := plan.next(); !ok {
			missed++
		}
	}
	stop.Store(true)
	wg.Wait()
	if missed > 0 {
		t.Fatalf("next() found no try %d times in 100000 though key B was untried and usable (more() said so)", missed)
	}
}
