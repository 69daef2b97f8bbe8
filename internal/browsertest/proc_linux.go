package browsertest

import (
	"os/exec"
	"syscall"
)

// procAttr puts the browser in a process group of its own, so that its
// helper processes can be killed with it, and kills it when the test binary
// dies (a test timeout panics past every Close).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills the browser and its helper processes.
func killGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
