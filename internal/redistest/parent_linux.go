package redistest

import "syscall"

// dieWithParent makes a server stop when the test binary does, even when
// it is killed (a test timeout panics past every Close): no redis-server is
// left running after a run.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
