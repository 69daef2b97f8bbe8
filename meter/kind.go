package meter

import "strings"

// Kind is the OpenAI API endpoint a request is for, as far as usage goes.
type Kind uint8

// The kinds of endpoint. Only the first four report token usage.
const (
	// KindOther is any endpoint that is not metered.
	KindOther Kind = iota
	// KindChat is POST /v1/chat/completions.
	KindChat
	// KindCompletion is the legacy POST /v1/completions.
	KindCompletion
	// KindEmbedding is POST /v1/embeddings.
	KindEmbedding
	// KindResponse is the Responses API, POST /v1/responses.
	KindResponse
)

// String returns "chat", "completion", "embedding", "response" or "other",
// the names used in metric labels.
func (k Kind) String() string {
	switch k {
	case KindChat:
		return "chat"
	case KindCompletion:
		return "completion"
	case KindEmbedding:
		return "embedding"
	case KindResponse:
		return "response"
	}
	return "other"
}

// KindOf classifies a URL path. Recognised forms, for each endpoint
// ("chat/completions", "completions", "embeddings", "responses"):
//
//	/v<N>/<endpoint>                     OpenAI and most compatible hosts (any version number)
//	/openai/v<N>/<endpoint>              Groq-style prefix
//	/openai/deployments/<id>/<endpoint>  Azure OpenAI
//
// The match is exact: sub-resources such as GET /v1/responses/{id} (which
// return a stored object with its usage) are KindOther, so they are never
// counted twice.
func KindOf(path string) Kind {
	if rest, ok := strings.CutPrefix(path, "/openai/"); ok {
		if dep, ok := strings.CutPrefix(rest, "deployments/"); ok {
			id, endpoint, ok := strings.Cut(dep, "/")
			if !ok || id == "" {
				return KindOther
			}
			return endpointKind(endpoint)
		}
		path = rest
	} else if path, ok = strings.CutPrefix(path, "/"); !ok {
		return KindOther
	}
	// path is now "v<N>/<endpoint>".
	version, endpoint, ok := strings.Cut(path, "/")
	if !ok || !isVersion(version) {
		return KindOther
	}
	return endpointKind(endpoint)
}

// isVersion reports whether s is "v" followed by one or more digits.
func isVersion(s string) bool {
	if len(s) < 2 || s[0] != 'v' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func endpointKind(endpoint string) Kind {
	switch endpoint {
	case "chat/completions":
		return KindChat
	case "completions":
		return KindCompletion
	case "embeddings":
		return KindEmbedding
	case "responses":
		return KindResponse
	}
	return KindOther
}
