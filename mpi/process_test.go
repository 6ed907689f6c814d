package mpi_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gorun-hpc/gorun/internal/contract"
	"github.com/gorun-hpc/gorun/internal/testing/testbin"
	"github.com/gorun-hpc/gorun/mpi"
)

// The multi-process tests run this test binary as n separate rank processes,
// with the launch contract's environment and a listening server, the way
// gorun does (gorun itself is tested in cmd/gorun). envCase names what a
// child runs.
const envCase = "MPI_TEST_PROCESS_CASE"

var processCases = map[string]func(ctx context.Context, c *mpi.Comm) error{
	"suite": suite,
	"flood": func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() != 0 {
			return floodLarge(ctx, c, 40, 1<<20, true, nil)
		}
		peak := watchHeap()
		err := floodLarge(ctx, c, 40, 1<<20, true, nil)
		fmt.Printf("peak heap growth: %d bytes\n", peak())
		return err
	},
	"singlecopy": func(ctx context.Context, c *mpi.Comm) error {
		err := exchangeLarge(ctx, c)
		fmt.Printf("single copies: %d, refused: %d\n", childCopies.Load(), childRefused.Load())
		return err
	},
	"floodsmall": func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() != 0 {
			return floodSmall(ctx, c, 40000, 1024, false)
		}
		peak := watchHeap()
		err := floodSmall(ctx, c, 40000, 1024, true)
		fmt.Printf("peak heap growth: %d bytes\n", peak())
		return err
	},
}

func TestMain(m *testing.M) {
	if name := os.Getenv(envCase); name != "" {
		os.Exit(runChild(name))
	}
	os.Exit(m.Run())
}

func runChild(name string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var opts []mpi.Option
	switch name {
	case "floodsmall":
		opts = append(opts, mpi.WithBuffers(16<<20, 32<<20))
	case "singlecopy":
		opts = append(opts, countingProbes(&childCopies, &childRefused))
	}
	c, err := mpi.Init(ctx, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := processCases[name](ctx, c); err != nil {
		fmt.Fprintf(os.Stderr, "rank %d: %v\n", c.Rank(), err)
		return 1
	}
	if err := c.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "rank %d: close: %v\n", c.Rank(), err)
		return 1
	}
	return 0
}

// watchHeap samples the heap every few milliseconds and returns a function
// that stops and reports the largest growth over the start.
func watchHeap() func() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > peak {
				peak = ms.HeapInuse - base
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(stop); <-done; return peak }
}

// runProcesses starts n rank processes of this test binary running the named
// case, and returns their combined output; it fails t if any exits non-zero.
// Each extra gives rank r more environment (extra(r)).
func runProcesses(t *testing.T, n int, name string, extra ...func(r int) []string) string {
	t.Helper()
	testbin.MultiProcess(t)
	token := "tok-" + uuid.NewString()
	s := startServer(t, token)
	job := uuid.NewString()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		out bytes.Buffer
	)
	errs := make([]error, n)
	l := &testLauncher{pids: make(map[int]int)}
	for r := range n {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			envCase+"="+name,
			mpi.EnvRank+"="+strconv.Itoa(r), mpi.EnvSize+"="+strconv.Itoa(n),
			mpi.EnvJobID+"="+job, mpi.EnvNATSURL+"="+s.ClientURL(),
			mpi.EnvNATSToken+"="+token,
		)
		for _, x := range extra {
			cmd.Env = append(cmd.Env, x(r)...)
		}
		var b bytes.Buffer
		cmd.Stdout, cmd.Stderr = &b, &b
		ctl := l.control(t, cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmd.ExtraFiles[0].Close() // the rank's end, now its own
		l.started(r, cmd.Process.Pid)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cmd.Wait()
			ctl.Close()
			mu.Lock()
			out.Write(b.Bytes())
			mu.Unlock()
			if err != nil {
				errs[r] = fmt.Errorf("rank %d: %v\n%s", r, err, b.Bytes())
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	return out.String()
}

// childCopies counts a child's single copies, childRefused the reads of
// another process's memory that the system refused it.
var childCopies, childRefused atomic.Int64

// TestProcessSingleCopy: between real processes, large messages are copied
// out of the sender's memory, one copy per receiver and message, and arrive
// intact; the processes read each other because their launcher (here
// testLauncher, as gorun) confirms each one's pid. Where the system forbids a rank to read another's memory (Yama's
// ptrace_scope, say), they arrive intact through the bus instead.
func TestProcessSingleCopy(t *testing.T) {
	needLinux(t)
	out := runProcesses(t, 4, "singlecopy")
	copies, refused := 0, 0
	for _, m := range regexp.MustCompile(`single copies: (\d+), refused: (\d+)`).FindAllStringSubmatch(out, -1) {
		c, _ := strconv.Atoi(m[1])
		r, _ := strconv.Atoi(m[2])
		copies += c
		refused += r
	}
	want := 4 + 3 // the ring, and the SendAll at three ranks
	if refused > 0 {
		t.Logf("the system refused %d reads between processes: messages went through the bus", refused)
		want = 0
	}
	if copies != want {
		t.Errorf("%d single copies in all, want %d; output:\n%s", copies, want, out)
	}
}

// TestProcesses runs the conformance suite with real OS processes.
func TestProcesses(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 8} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) { runProcesses(t, n, "suite") })
	}
}

var peakRE = regexp.MustCompile(`peak heap growth: (\d+) bytes`)

// floodPeak runs the named flood case as 5 processes and returns rank 0's
// reported peak heap growth, in bytes.
func floodPeak(t *testing.T, name string) int {
	t.Helper()
	out := runProcesses(t, 5, name)
	m := peakRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no heap figure in the output:\n%s", out)
	}
	peak, _ := strconv.Atoi(m[1])
	return peak
}

// TestProcessFloodMemory: rank 0 sleeps 2 s while 4 processes Isend it 40 x
// 1 MiB each (160 MiB); all arrive intact, no slow consumer ends the job,
// and rank 0's heap grows by far less than what was sent: the senders'
// data waits at the senders until rank 0 posts a matching receive
// (rendezvous), so rank 0 holds at most the message it asked for plus the
// rendezvous window.
func TestProcessFloodMemory(t *testing.T) {
	peak := floodPeak(t, "flood")
	t.Logf("rank 0 peak heap growth while receiving 160 MiB: %.1f MiB", float64(peak)/(1<<20))
	if peak > 96<<20 {
		t.Errorf("rank 0's heap grew by %d MiB while 160 MiB were sent to it: flow control is not bounding it", peak>>20)
	}
}

// TestProcessFloodSmallMemory: 4 processes send 40000 messages of 1 KiB each
// (160 MiB) to a rank that sleeps for 2 s: eager credit (a 16 MiB budget
// here) bounds what waits at rank 0, and nothing is lost.
func TestProcessFloodSmallMemory(t *testing.T) {
	peak := floodPeak(t, "floodsmall")
	t.Logf("rank 0 peak heap growth under 160000 small messages (160 MiB): %.1f MiB", float64(peak)/(1<<20))
	// A 16 MiB budget, plus bookkeeping and garbage not yet collected.
	if peak > 80<<20 {
		t.Errorf("rank 0's heap grew by %d MiB", peak>>20)
	}
}

// testLauncher is gorun's part on the ranks' control sockets
// (contract.Control) that single copies need: it answers a rank's
// contract.QueryPid with the pid it started as that rank, so that the
// ranks copy large messages out of each other's memory (a rank outside
// gorun reads no other process). Every other line is ignored.
type testLauncher struct {
	mu   sync.Mutex
	pids map[int]int // world rank -> pid
}

func (l *testLauncher) started(rank, pid int) {
	l.mu.Lock()
	l.pids[rank] = pid
	l.mu.Unlock()
}

// control gives cmd a control socket as its descriptor 3 (close
// cmd.ExtraFiles[0] once it has started), and answers on it until the
// returned end is closed.
func (l *testLauncher) control(t *testing.T, cmd *exec.Cmd) *os.File {
	t.Helper()
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "control"), os.NewFile(uintptr(fds[1]), "control-rank")
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Env = append(cmd.Env, contract.Control+"=3")
	go func() {
		sc := bufio.NewScanner(ours)
		sc.Buffer(make([]byte, 4096), contract.MaxStateLine)
		for sc.Scan() {
			if r, ok := contract.ParsePidQuery(sc.Text()); ok {
				l.mu.Lock()
				pid := l.pids[r]
				l.mu.Unlock()
				ours.Write([]byte(contract.PidAnswer(r, pid) + "\n"))
			}
		}
	}()
	return ours
}
