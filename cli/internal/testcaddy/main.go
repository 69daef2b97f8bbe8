// Command testcaddy is Caddy with its standard modules and aiproxy, the
// main package xcaddy generates for such a build. The cli package's tests
// build it and run its `caddy aiproxy` command against its own sites.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/aiproxy/aiproxy"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func main() {
	caddycmd.Main()
}
