package launcher

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/contract"
	"github.com/gorun-hpc/gorun/internal/testing/testbin"
)

// A job whose parent is SIGKILLed while its keeper is still the shell
// (before keeperLate) is swept all the same: the shell execs this program
// as the keeper, which kills what carries the job's id.
func TestShellKeeperSweeps(t *testing.T) {
	job := fmt.Sprintf("shellkeeper-%d", os.Getpid())
	orphan := exec.Command("sleep", "60")
	orphan.Env = append(os.Environ(), contract.JobID+"="+job)
	orphan.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	gone := make(chan struct{})
	go func() { orphan.Wait(); close(gone) }()
	t.Cleanup(func() { orphan.Process.Kill(); <-gone })

	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), "GORUN_TEST_KEEPER_JOB="+job)
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	parent.Stderr = os.Stderr
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { parent.Process.Kill(); parent.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	pid, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "keeper "))
	if err != nil {
		t.Fatalf("the parent said %q", line)
	}
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if f := strings.Split(string(cmdline), "\x00"); len(f) < 4 || f[0] != shell || f[1] != "-c" || f[3] != keeperArg || !isKeeper(pid) {
		t.Fatalf("the keeper runs %q, want the shell", f)
	}
	parent.Process.Kill()
	parent.Wait()
	select {
	case <-gone:
	case <-time.After(30 * time.Second):
		t.Fatal("the job's process still runs 30 s after its parent was killed")
	}
	testbin.WaitFor(t, 30*time.Second, func() bool { return syscall.Kill(pid, 0) != nil }, "the keeper gone")
}

// A TestShellKeeperSweeps's parent: this test binary started again with
// GORUN_TEST_KEEPER_JOB, it starts a keeper that stays the shell, says its
// pid, and waits to be killed.
func init() {
	job := os.Getenv("GORUN_TEST_KEEPER_JOB")
	if job == "" {
		return
	}
	k := startKeeper(job)
	if k == nil || k.late == nil {
		fmt.Fprintln(os.Stderr, "no shell keeper")
		os.Exit(1)
	}
	k.late.Stop()
	fmt.Printf("keeper %d\n", k.cmd.Process.Pid)
	select {}
}
