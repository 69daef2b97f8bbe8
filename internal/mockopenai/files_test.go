package mockopenai

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

// TestFilesSDK: a multipart upload recorded with its hash, and a delete.
func TestFilesSDK(t *testing.T) {
	o := NewTLS(t, testKey)
	client := sdkClient(o, testKey)
	ctx := context.Background()

	content := bytes.Repeat([]byte("line of jsonl\n"), 1000)
	f, err := client.Files.New(ctx, openai.FileNewParams{
		File:    openai.File(bytes.NewReader(content), "data.jsonl", "application/jsonl"),
		Purpose: openai.FilePurposeBatch,
	})
	if err != nil {
		t.Fatal(err)
	}
	rr := o.LastRequest()
	sum := sha256.Sum256(content)
	if f.Bytes != int64(len(content)) || f.Filename != "data.jsonl" || rr.UploadSHA256 != hex.EncodeToString(sum[:]) ||
		rr.UploadBytes != int64(len(content)) || rr.UploadPurpose != "batch" || !strings.HasPrefix(rr.ContentType, "multipart/form-data") {
		t.Errorf("upload: file %+v, recorded %+v", f, rr)
	}
	del, err := client.Files.Delete(ctx, f.ID)
	if err != nil || !del.Deleted || del.ID != f.ID {
		t.Errorf("delete: %v %v", del, err)
	}
	if rr := o.LastRequest(); rr.Method != "DELETE" || rr.Path != "/v1/files/"+f.ID || rr.BodyLen != 0 {
		t.Errorf("delete recorded %+v", rr)
	}
}
