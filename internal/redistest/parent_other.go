//go:build !linux

package redistest

import "syscall"

// dieWithParent has no portable form outside Linux: servers are stopped by
// Close only.
func dieWithParent() *syscall.SysProcAttr { return nil }
