// Package meter reads token usage out of OpenAI API traffic as it streams
// past a proxy, without buffering whole bodies.
//
// On the request side, [KindOf] classifies an API path, [InspectRequest]
// reads the model, streaming flags, output caps and choice counts of a JSON
// request body with a small scanner that skips everything else (a
// multi-megabyte base64 image costs a single pass and no allocation), and
// edits change the body without re-encoding or copying it:
// [IncludeUsageEdits] asks a stream for its usage
// (stream_options.include_usage), [CapEdits] sets an output cap such as
// max_tokens, and [Pieces] applies any of them together, as slices of the
// body and the few bytes spliced in. [IncludeUsagePieces] is the first
// alone.
//
// On the response side, a [Meter] observes the response body chunk by chunk:
//
//	kind := meter.KindOf(r.URL.Path)
//	info, err := meter.InspectRequest(body)
//	send, strip := [][]byte{body}, false
//	if err == nil && info.Stream && !info.IncludeUsage {
//		if pieces, ok := meter.IncludeUsagePieces(body); ok {
//			send, strip = pieces, true // sent one after the other
//		}
//	}
//	m := meter.New(kind, strip)
//	m.Start(status, header.Get("Content-Type")) // at WriteHeader
//	client.Write(m.Write(chunk))                 // for every chunk
//	client.Write(m.Finish())                     // at the end
//	u := m.Usage()
//
// JSON bodies (chat, completion, embedding and Responses API objects) are
// fed through a streaming scanner that keeps only the raw bytes of the
// top-level "model" and "usage" values. Server-sent event streams are split
// into events across arbitrary chunk boundaries; each event's data is fed
// through the same kind of scanner, so even an event of any size is metered
// with bounded memory. When the proxy injected include_usage for a client
// that did not ask for it, the meter strips what that added, so the client
// receives the bytes it would have received without the injection.
//
// Only the standard library is used; the package knows nothing of Caddy.
package meter
