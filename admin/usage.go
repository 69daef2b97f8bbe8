package admin

import (
	"net/http"

	"github.com/aiproxy/aiproxy/internal/apierror"
)

// serveUsage answers GET /admin/usage. Usage accounting comes in a later
// change; until then the route exists and says plainly that it is not there
// yet, rather than answering 404 as if the path were wrong.
func (h *Handler) serveUsage(w http.ResponseWriter, _ *http.Request) {
	apierror.Write(w, http.StatusNotImplemented, apierror.TypeServer, "not_implemented",
		"usage statistics are not implemented yet")
}
