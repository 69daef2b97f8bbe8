package aiproxy

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// Per-request choices reach the shared nested proxies through request vars,
// never through handler fields (they serve many requests at once).
const (
	varHostDial   = "aiproxy.host_dial"
	varHostHeader = "aiproxy.host_header"
	varHostKey    = "aiproxy.host_key"
	varAuthName   = "aiproxy.auth_name"   // the header the provider's key goes in
	varAuthPrefix = "aiproxy.auth_prefix" // before the key in it: "Bearer " or ""
	// VarUser holds the authenticated user's name for later handlers and
	// log fields ({http.vars.aiproxy.user}).
	VarUser = "aiproxy.user"
)

// requestHeadersRemoved never reach a provider: the headers Caddy's proxy
// adds to tell the upstream about the client and itself. What the client
// sent of that kind is taken out before (withoutRelayHeaders), and so is
// its own key (withoutClientKey), from any of the headers SDKs use: the
// provider's key may go in any of them.
//
// Accept-Encoding is not among them: serveProxy sets it to gzip or takes
// it out (encoding.go), and with none Go's transport asks for gzip itself
// and decompresses.
//
// Each costs Caddy a canonicalized copy of its name per request (it
// lowercases names, then deletes with http.Header.Del): the fewer here the
// better.
var requestHeadersRemoved = []string{"via", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}

// hostProxies are Caddy's own reverse_proxy handlers, built once at
// provision time: a dial address that comes from a placeholder carries no
// scheme, so https and plain-http hosts need one proxy each.
type hostProxies struct {
	https caddyhttp.MiddlewareHandler
	http  caddyhttp.MiddlewareHandler
}

func (p hostProxies) forHost(u *host) caddyhttp.MiddlewareHandler {
	if u.tls {
		return p.https
	}
	return p.http
}

// streamOptions are the reverse proxy's settings for upgraded connections.
type streamOptions struct {
	closeDelay caddy.Duration // keep them open this long after an unload
	timeout    caddy.Duration // close them after this long; 0: never
}

func loadHostProxies(ctx caddy.Context, streams streamOptions) (hostProxies, error) {
	var p hostProxies
	var err error
	if p.https, err = loadHostProxy(ctx, true, streams); err != nil {
		return p, err
	}
	if p.http, err = loadHostProxy(ctx, false, streams); err != nil {
		return p, err
	}
	return p, nil
}

// loadHostProxy loads a reverse_proxy through the context, so Caddy
// provisions it and cleans it up with this handler.
func loadHostProxy(ctx caddy.Context, useTLS bool, streams streamOptions) (caddyhttp.MiddlewareHandler, error) {
	transport := new(reverseproxy.HTTPTransport)
	if useTLS {
		transport.TLS = new(reverseproxy.TLSConfig)
	}
	rp := reverseproxy.Handler{
		TransportRaw: caddyconfig.JSONModuleObject(transport, "protocol", "http", nil),
		Upstreams:    reverseproxy.UpstreamPool{{Dial: "{http.vars." + varHostDial + "}"}},
		// A reload unloads these proxies, which then close the upgraded
		// connections they hold, at once or after StreamCloseDelay.
		StreamCloseDelay: streams.closeDelay,
		StreamTimeout:    streams.timeout,
		// FlushInterval stays at Caddy's default on purpose: Caddy then
		// flushes every write of an SSE (text/event-stream) or unknown-length
		// answer, so streams reach clients chunk by chunk, while a JSON
		// answer of known length is written without a flush per write. An
		// explicit -1 flushed those too and cost about 15% of throughput.
		Headers: &headers.Handler{
			Request: &headers.HeaderOps{
				Set: http.Header{
					"Host": {"{http.vars." + varHostHeader + "}"},
					// The header and its form are the host's (HostConfig.Auth).
					"{http.vars." + varAuthName + "}": {"{http.vars." + varAuthPrefix + "}{http.vars." + varHostKey + "}"},
				},
				Delete: requestHeadersRemoved,
			},
		},
	}
	raw, err := json.Marshal(rp)
	if err != nil {
		return nil, err
	}
	mod, err := ctx.LoadModuleByID("http.handlers.reverse_proxy", raw)
	if err != nil {
		return nil, fmt.Errorf("loading nested reverse_proxy: %v", err)
	}
	return mod.(caddyhttp.MiddlewareHandler), nil
}
