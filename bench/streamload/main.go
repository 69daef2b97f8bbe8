// Command streamload measures streaming chat completions through a proxy:
// a mock provider that streams chunks stamped with their send time, a load
// that holds many streams open at once and reports, for the proxy's
// process, its memory and goroutines idle, with every stream open and
// after they end, and how long each chunk took from provider to client;
// and a long run of short requests with the proxy's RSS sampled as it goes.
//
//	streamload provider -addr 127.0.0.1:18290
//	streamload load -url http://127.0.0.1:18291/v1/chat/completions -key sk-cfw... \
//		-streams 1000 -chunks 1000 -interval 50ms -pid $(pidof caddy) \
//		-admin http://localhost:20290 -provider http://127.0.0.1:18290
//	streamload requests -url ... -key sk-cfw... -n 1000000 -every 100000 -pid $(pidof caddy)
//
// Both run on the same machine, so the time a chunk took is the client's
// clock at arrival minus the provider's at sending. Standard library only.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "provider":
		err = runProvider(os.Args[2:])
	case "load":
		err = runLoad(os.Args[2:])
	case "requests":
		err = runRequests(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamload:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: streamload provider|load|requests [flags] (-h for each)")
	os.Exit(2)
}
