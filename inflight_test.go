package aiproxy

import (
	"context"
	"testing"
)

func TestInflightWait(t *testing.T) {
	var f inflight
	if !f.wait(context.Background()) {
		t.Fatal("wait with nothing in flight")
	}
	f.start()
	f.start()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if f.wait(ctx) {
		t.Fatal("wait returned true with requests in flight")
	}
	waited := make(chan bool)
	go func() { waited <- f.wait(context.Background()) }()
	f.done()
	f.done()
	if !<-waited {
		t.Fatal("wait did not see the last request end")
	}
	f.start() // usable again
	f.done()
	if !f.wait(context.Background()) {
		t.Fatal("wait after a second round")
	}
}
