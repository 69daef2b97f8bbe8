package mockopenai

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"mime/multipart"
	"net/http"
)

// upload is what POST /v1/files saw of the uploaded file.
type upload struct {
	filename, purpose string
	bytes             int64
	sha256            string
}

// uploadFile reads the multipart body part by part, hashing the file as it
// streams, so any size works and the recorded hash proves it arrived intact.
func (c *call) uploadFile() {
	mr, err := c.r.MultipartReader()
	if err != nil {
		c.record(nil)
		c.fail(http.StatusBadRequest, "invalid_request_error", "", "",
			"Invalid Content-Type header ("+c.r.Header.Get("Content-Type")+"), expected multipart/form-data.")
		return
	}
	var up upload
	sawFile := false
	for err == nil {
		var p *multipart.Part
		p, err = mr.NextPart()
		if err != nil {
			break
		}
		switch p.FormName() {
		case "file":
			h := sha256.New()
			up.bytes, err = io.Copy(h, p)
			up.filename, up.sha256, sawFile = p.FileName(), hex.EncodeToString(h.Sum(nil)), true
		case "purpose":
			var b []byte
			b, err = io.ReadAll(io.LimitReader(p, 1<<10))
			up.purpose = string(b)
		}
	}
	c.record(&up)
	if err != io.EOF {
		c.fail(http.StatusBadRequest, "invalid_request_error", "", "", "Could not parse multipart form: "+err.Error())
		return
	}
	if !sawFile {
		c.fail(http.StatusBadRequest, "invalid_request_error", "missing_required_parameter", "file",
			"Missing required parameter: 'file'.")
		return
	}
	if up.purpose == "" {
		c.fail(http.StatusBadRequest, "invalid_request_error", "missing_required_parameter", "purpose",
			"Missing required parameter: 'purpose'.")
		return
	}
	c.writeJSON(http.StatusOK, map[string]any{
		"id": c.id("file-"), "object": "file", "bytes": up.bytes, "created_at": fixedTime,
		"filename": up.filename, "purpose": up.purpose, "status": "processed",
		"expires_at": nil, "status_details": nil,
	})
}

func (c *call) deleteFile(id string) {
	c.record(nil)
	c.writeJSON(http.StatusOK, map[string]any{"id": id, "object": "file", "deleted": true})
}
