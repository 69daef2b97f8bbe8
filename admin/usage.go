package admin

import (
	"net/http"

	"github.com/aiproxy/aiproxy/internal/apierror"
	"github.com/aiproxy/aiproxy/usage"
)

// serveUsage answers GET /admin/usage?user=&model=&from=&to=&format=, for
// any user.
func (h *Handler) serveUsage(w http.ResponseWriter, r *http.Request) {
	if h.Usage == nil {
		apierror.Write(w, http.StatusNotImplemented, apierror.TypeServer, "not_implemented",
			"usage statistics are not available on this gateway")
		return
	}
	usage.Serve(w, r, h.Usage, usage.Owner{}, h.now())
}
