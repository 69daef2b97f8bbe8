//go:build !linux

package browsertest

import (
	"os/exec"
	"syscall"
)

// procAttr has no portable form outside Linux: the browser is stopped by
// Close only.
func procAttr() *syscall.SysProcAttr { return nil }

// killGroup kills the browser.
func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
