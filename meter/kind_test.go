package meter

import "testing"

func TestKindOf(t *testing.T) {
	tests := []struct {
		path string
		want Kind
	}{
		{"/v1/chat/completions", KindChat},
		{"/v1/completions", KindCompletion},
		{"/v1/embeddings", KindEmbedding},
		{"/v1/responses", KindResponse},
		{"/openai/v1/chat/completions", KindChat}, // Groq
		{"/openai/v1/completions", KindCompletion},
		{"/openai/v1/embeddings", KindEmbedding},
		{"/openai/v1/responses", KindResponse},
		{"/v2/chat/completions", KindChat},
		{"/v10/embeddings", KindEmbedding},
		{"/openai/deployments/gpt-4o/chat/completions", KindChat}, // Azure
		{"/openai/deployments/emb/embeddings", KindEmbedding},

		{"/v1/responses/resp_123", KindOther}, // a stored response: never counted again
		{"/v1/responses/resp_123/input_items", KindOther},
		{"/v1/chat/completions/chatcmpl-1", KindOther},
		{"/v1/chat/completions/", KindOther},
		{"/v1/models", KindOther},
		{"/v1/audio/speech", KindOther},
		{"/v1/files", KindOther},
		{"/v/chat/completions", KindOther},
		{"/vx/chat/completions", KindOther},
		{"/v1beta/chat/completions", KindOther},
		{"/V1/chat/completions", KindOther},
		{"/v1/Chat/Completions", KindOther},
		{"/chat/completions", KindOther},
		{"v1/chat/completions", KindOther},
		{"/openai/chat/completions", KindOther},
		{"/openai/deployments//chat/completions", KindOther},
		{"/openai/deployments/x", KindOther},
		{"/openai/openai/v1/chat/completions", KindOther},
		{"/x/v1/chat/completions", KindOther},
		{"/me", KindOther},
		{"", KindOther},
		{"/", KindOther},
	}
	for _, tt := range tests {
		if got := KindOf(tt.path); got != tt.want {
			t.Errorf("KindOf(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		KindChat: "chat", KindCompletion: "completion", KindEmbedding: "embedding",
		KindResponse: "response", KindOther: "other", Kind(200): "other",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[Mode]string{ModePass: "pass", ModeJSON: "json", ModeSSE: "sse", Mode(9): "pass"} {
		if got := m.String(); got != want {
			t.Errorf("Mode(%d).String() = %q, want %q", m, got, want)
		}
	}
}
