package aiproxy

import (
	"strings"
	"testing"
)

func TestPathFault(t *testing.T) {
	for _, c := range []struct {
		path, fault string // fault: a word the description holds; "" for canonical
	}{
		{"/", ""},
		{"*", ""},
		{"", ""},
		{"/v1", ""},
		{"/v1/chat/completions", ""},
		{"/v1/files/file-abc/content", ""},
		{"/v1/a.b/..c/...", ""},
		{"/v1/.well-known", ""},
		{"/v1/", "trailing slash"},
		{"/v1/chat/completions/", "trailing slash"},
		{"//v1/chat", "empty segment"},
		{"/v1//chat", "empty segment"},
		{"/v1/chat//", "empty segment"},
		{"/v1/./chat", `"."`},
		{"/v1/.", `"."`},
		{"/./v1", `"."`},
		{"/v1/../x", `".."`},
		{"/v1/..", `".."`},
		{"/..", `".."`},
	} {
		got := pathFault(c.path)
		if c.fault == "" && got != "" || c.fault != "" && !strings.Contains(got, c.fault) {
			t.Errorf("pathFault(%q) = %q, want %q", c.path, got, c.fault)
		}
	}
}

func TestCanonicalRoute(t *testing.T) {
	for _, c := range []struct {
		path  string
		route route
		bad   bool
	}{
		{"/v1/chat/completions", routeProxy, false},
		{"/v1//chat/completions", routeProxy, true},
		{"//v1/chat/completions", routeProxy, true},     // ours once cleaned
		{"/x/../v1/chat/completions", routeProxy, true}, // ours once cleaned
		{"/v1/../../tenant-b/admin", routeProxy, true},  // ours as it stands
		{"/me/", routeSelf, true},
		{"/admin/ui/", routeUI, false}, // a page: its path ends in a slash
		{"/me/ui/", routeUI, false},
		{"/admin/ui", routeUI, false}, // redirected to the slash
		{"/admin/ui/admin.js", routeUI, false},
		{"/admin/ui//admin.js", routeUI, true},
		{"/admin/ui/../users", routeUI, true},
		{"/admin/ui/x/", routeUI, true},
		{"/admin/uix", routeAdmin, false},
		{"/me/../admin/users", routeSelf, true},
		{"//admin/users", routeAdmin, true},
		{"/static//app.js", routeNone, true},    // the site's
		{"/token/register/x/", routeNone, true}, // never a worker route
		{"/token/register/x", routeNone, false},
		{"/", routeNone, false},
	} {
		rt, fault := canonicalRoute(c.path)
		if rt != c.route || (fault != "") != c.bad {
			t.Errorf("canonicalRoute(%q) = %v, %q; want %v, non-canonical %v", c.path, rt, fault, c.route, c.bad)
		}
	}
}

func TestPathFaultDoesNotAllocate(t *testing.T) {
	p := "/v1/chat/completions"
	if n := testing.AllocsPerRun(100, func() { _, _ = canonicalRoute(p) }); n != 0 {
		t.Fatalf("canonicalRoute allocates %v times per canonical path", n)
	}
}
