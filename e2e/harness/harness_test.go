package harness

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Acknowledged messages must survive kill -9 of the server: that is the
// setting (sync_interval: always) every crash test builds on.
func TestNATSKillRestartKeepsAckedMessages(t *testing.T) {
	n := StartNATS(t, "")
	_, js := n.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	const msgs = 200
	for i := range msgs {
		if _, err := js.Publish(ctx, "s.x", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	port, first := n.Port(), n.Proc()
	n.Kill()
	if !first.Exited() {
		t.Fatal("Kill returned before the server exited")
	}
	n.Restart()
	if n.Port() != port || n.Proc() == first {
		t.Fatalf("restart: port %d -> %d, same process %v", port, n.Port(), n.Proc() == first)
	}
	// The client reconnects by itself.
	var info *jetstream.StreamInfo
	for {
		s, err := js.Stream(ctx, "S")
		if err == nil {
			if info, err = s.Info(ctx); err == nil {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("stream after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if info.State.Msgs != msgs {
		t.Fatalf("stream holds %d messages after kill -9 and restart, want %d", info.State.Msgs, msgs)
	}

	// Restart of a running server stops it first.
	n.Restart()
	if err := n.Stop(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
}

func TestProcStopLogAndPeakRSS(t *testing.T) {
	n := StartNATS(t, "")
	p := n.Proc()
	if !strings.Contains(p.Log(), "Server is ready") {
		t.Fatalf("log: %s", p.Log())
	}
	if p.PeakRSSKiB() <= 0 {
		t.Fatal("no peak RSS while running")
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !p.Exited() || p.PeakRSSKiB() <= 0 {
		t.Fatalf("after stop: exited %v, peak %d KiB", p.Exited(), p.PeakRSSKiB())
	}
}

func TestProcKillAndWait(t *testing.T) {
	p := StartProcess(t, "/bin/sleep", []string{"60"}, nil)
	if p.Exited() {
		t.Fatal("exited at once")
	}
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	p.Kill()
	err := p.Wait()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("wait after kill: %v", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed")
	}
}

func TestProcEnvironment(t *testing.T) {
	t.Setenv("PGJET_STRAY", "from the shell")
	t.Setenv("HARNESS_KEPT", "yes")
	p := StartProcess(t, "/usr/bin/env", nil, []string{"PGJET_DSN=given"})
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	log := p.Log()
	if strings.Contains(log, "PGJET_STRAY") || !strings.Contains(log, "PGJET_DSN=given") || !strings.Contains(log, "HARNESS_KEPT=yes") {
		t.Fatalf("environment:\n%s", log)
	}
	if !p.WaitForLog("PGJET_DSN", time.Second) || p.WaitForLog("never written", time.Second) {
		t.Fatal("WaitForLog")
	}
}

func TestBinDirMissingFailsClearly(t *testing.T) {
	t.Setenv("PGJET_BIN_DIR", t.TempDir())
	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		BinDir(ft)
	}()
	<-done
	if !strings.Contains(ft.msg, "make build") {
		t.Fatalf("message: %q", ft.msg)
	}
}

// fatalTB records a Fatalf and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestLastLines(t *testing.T) {
	if got := lastLines("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("got %q", got)
	}
	if got := lastLines("a", 5); got != "a" {
		t.Errorf("got %q", got)
	}
}
