// Package proc runs the operator's binaries as child processes for the programs in
// hack/ that start a whole installation on one machine (demo, membench): each child in
// its own process group with its output in a log file, stopped the way the kubelet
// stops a container (SIGTERM, then SIGKILL).
package proc

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Process is one child process and its log file.
type Process struct {
	Name    string
	LogPath string // dir/Name.log, appended to (a restarted child keeps its history)
	cmd     *exec.Cmd
	done    chan struct{}
}

// Start runs path with args, env added to this process's environment, in its own
// process group (a Ctrl-C reaches the parent only, which then stops its children in
// order). Output goes to dir/name.log and, when echo is set, to echo too.
func Start(dir, name, path string, args, env []string, echo io.Writer) (*Process, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%s: %w (run `make build`, which builds it)", path, err)
	}
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var sink io.Writer = logFile
	if echo != nil {
		sink = io.MultiWriter(logFile, echo)
	}
	cmd.Stdout, cmd.Stderr = sink, sink
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the child has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop asks politely (SIGTERM, as the kubelet does), then insists after 10 s (SIGKILL
// to the whole process group), and waits for the child to end.
func (p *Process) Stop() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// FreeAddr returns a loopback address with a port nobody listens on.
func FreeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("no free loopback port: %v", err))
	}
	defer ln.Close()
	return ln.Addr().String()
}
