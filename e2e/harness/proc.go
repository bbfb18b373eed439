package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// StopTimeout is how long Stop waits after SIGTERM before it kills.
const StopTimeout = 15 * time.Second

// Proc is a running (or finished) binary with its output in a log file.
type Proc struct {
	Name    string
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, valid once done is closed
	peak atomic.Int64
}

// StartProcess starts bin/<name> (or name itself when it is a path) with args.
// The environment is the test's own minus every PGJET_* variable, plus env:
// the binaries read their flags from PGJET_*, so a stray one in the caller's
// shell must not change what a test runs. Stdout and stderr go to a log file
// in a temp dir. When the test ends the process is killed, and if the test
// failed the last 100 lines of its log are printed.
func StartProcess(t testing.TB, name string, args []string, env []string) *Proc {
	t.Helper()
	path := name
	if !strings.Contains(name, "/") {
		path = binPath(t, binDir(t), name)
	}
	logPath := filepath.Join(t.TempDir(), filepath.Base(name)+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// The child writes to the file directly; our copy of the descriptor is not needed.
	defer f.Close()

	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(inheritedEnv(), env...)
	// If the test binary dies without running cleanups (a timeout panic),
	// the kernel kills the child instead of leaving it running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	p := &Proc{Name: filepath.Base(name), LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	go p.trackPeakRSS()

	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("last lines of %s (pid %d, %s):\n%s", p.Name, p.Pid(), p.LogPath, lastLines(p.Log(), 100))
		}
	})
	return p
}

func inheritedEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PGJET_") {
			env = append(env, kv)
		}
	}
	return env
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit and returns its exit error (nil for
// status 0).
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Signal sends sig, e.g. SIGSTOP and SIGCONT to freeze a process.
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// Stop asks the process to stop (SIGTERM), waits up to StopTimeout and then
// kills it. It returns the exit error, or an error saying it had to kill.
func (p *Proc) Stop() error {
	if p.Exited() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(StopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.err
	case <-timer.C:
		p.Kill()
		return fmt.Errorf("%s did not stop within %s of SIGTERM and was killed", p.Name, StopTimeout)
	}
}

// Kill kills the process (SIGKILL, no chance to clean up) and waits for it.
func (p *Proc) Kill() {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// Log returns everything the process has written so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// WaitForLog waits until the log contains substr. It returns false after
// timeout, or as soon as the process exits without having written it.
func (p *Proc) WaitForLog(substr string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		exited := p.Exited() // read before the log, so the last lines are seen
		if strings.Contains(p.Log(), substr) {
			return true
		}
		if exited || time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PeakRSSKiB is the highest resident set size (VmHWM) seen while the process
// ran, in KiB. The kernel forgets it at exit, so it is sampled every 50 ms.
func (p *Proc) PeakRSSKiB() int64 {
	p.sampleRSS()
	return p.peak.Load()
}

func (p *Proc) trackPeakRSS() {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		p.sampleRSS()
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
	}
}

func (p *Proc) sampleRSS() {
	if p.Exited() {
		return
	}
	kib := readVmHWM(p.Pid())
	for {
		old := p.peak.Load()
		if kib <= old || p.peak.CompareAndSwap(old, kib) {
			return
		}
	}
}

// readVmHWM returns the "VmHWM:  1234 kB" value of /proc/<pid>/status, or 0.
func readVmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
