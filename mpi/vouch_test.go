package mpi

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/gorun-hpc/gorun/internal/contract"
)

// TestLyingPid (issue #30): a rank with its own genuine key that announced
// another process's pid at start-up, and names it in its single-copy
// offers, is never read: not without a launcher (mpitest, where every
// rank is this process), nor when the launcher names another process as
// that rank. The receiver grants chunks instead and gets the message whole
// through the bus; an honest rank's large messages are still copied.
func TestLyingPid(t *testing.T) {
	if hostIdentity() == 0 {
		t.Skip("no single copies on this system")
	}
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	liar := func(o *Options) error {
		if o.Rank == 1 {
			o.pid = other.Process.Pid
		}
		return nil
	}
	var mu sync.Mutex
	var asked []int
	launcher := func(o *Options) error {
		o.pidsOf = func(_ context.Context, ranks []int) (map[int]int, bool) {
			mu.Lock()
			asked = append(asked, ranks...)
			mu.Unlock()
			pids := map[int]int{}
			for _, r := range ranks {
				pids[r] = os.Getpid() // it started every rank as this process
			}
			return pids, true
		}
		return nil
	}
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"no launcher", []Option{liar}},
		{"launcher", []Option{liar, launcher}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := startHostile(t, 2, tc.opts...)
			defer j.close()
			if got := j.comms[1].e.pid; got != other.Process.Pid {
				t.Fatalf("rank 1 offers pid %d, want the other process's %d", got, other.Process.Pid)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			msg := bytes.Repeat([]byte("rank 1's own bytes "), 1<<16)
			var wg sync.WaitGroup
			var serr error
			wg.Go(func() { serr = j.comms[1].Send(ctx, 0, 5, msg) })
			got, st, err := j.comms[0].Recv(ctx, 1, 5)
			wg.Wait()
			if err != nil || serr != nil || !bytes.Equal(got, msg) || st.Source != 1 {
				t.Fatalf("rank 0 got %d bytes (%v), send %v; want rank 1's %d bytes", len(got), err, serr, len(msg))
			}
			// The honest way round: rank 1 reads rank 0, this process.
			wg.Go(func() { serr = j.comms[0].Send(ctx, 1, 6, msg) })
			got, _, err = j.comms[1].Recv(ctx, 0, 6)
			wg.Wait()
			if err != nil || serr != nil || !bytes.Equal(got, msg) {
				t.Fatalf("rank 1 got %d bytes (%v), send %v; want rank 0's %d bytes", len(got), err, serr, len(msg))
			}
			close(j.reads)
			var read []int
			for pid := range j.reads {
				read = append(read, pid)
			}
			if slices.Contains(read, other.Process.Pid) {
				t.Fatalf("a rank read the memory of pid %d, which rank 1 announced but is no rank", other.Process.Pid)
			}
			if readsSelf() && !slices.Contains(read, os.Getpid()) {
				t.Errorf("rank 1 did not copy rank 0's message out of this process (reads: %v)", read)
			}
		})
	}
	if !slices.Equal(asked, []int{1}) {
		t.Errorf("the launcher was asked about ranks %v, want [1]: only the peer that announced another process", asked)
	}
}

// readsSelf reports whether this process may read itself with
// process_vm_readv (a seccomp filter may forbid it).
func readsSelf() bool {
	var dst [1]byte
	return readRemote(os.Getpid(), uint64(uintptr(unsafe.Pointer(&selfProbe[0]))), dst[:]) == nil && dst[0] == 42
}

// selfProbe is what readsSelf reads: a package variable, which never moves.
var selfProbe = [1]byte{42}

// TestVouch: which peers' announced processes a rank may read: this
// process's always; another's only if the launcher names it as that rank;
// none on another machine, none that announced none, and none at all
// without an answer.
func TestVouch(t *testing.T) {
	self := os.Getpid()
	peers := []hello{
		{pid: self, host: 7, credit: 1}, // 0: this rank
		{pid: self, host: 7, credit: 1}, // 1: a goroutine rank of this process
		{pid: 1001, host: 7, credit: 1}, // 2: vouched for
		{pid: 1002, host: 7, credit: 1}, // 3: the launcher names another process
		{pid: 1003, host: 7, credit: 1}, // 4: the launcher did not start it
		{pid: 1004, host: 8, credit: 1}, // 5: another machine
		{pid: 0, host: 0, credit: 1},    // 6: no offers
	}
	launcher := map[int]int{2: 1001, 3: 999, 4: 0}
	var asked []int
	e := &engine{rank: 0, host: 7, opts: Options{pidsOf: func(_ context.Context, ranks []int) (map[int]int, bool) {
		asked = ranks
		return launcher, true
	}}}
	got := e.vouch(context.Background(), peers)
	if want := []bool{false, true, true, false, false, false, false}; !slices.Equal(got, want) {
		t.Errorf("vouched %v, want %v", got, want)
	}
	if !slices.Equal(asked, []int{2, 3, 4}) {
		t.Errorf("asked the launcher about %v, want [2 3 4]", asked)
	}
	e.opts.pidsOf = func(context.Context, []int) (map[int]int, bool) { return nil, false }
	if got := e.vouch(context.Background(), peers); !slices.Equal(got, []bool{false, true, false, false, false, false, false}) {
		t.Errorf("without a launcher: vouched %v, want this process only", got)
	}
}

// TestAskPidsTold: pids the launcher gave unasked on the control socket
// (its host's ranks, once all started) answer askPids with no question on
// the socket; a rank it did not tell of is asked about, as before.
func TestAskPidsTold(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.SetNonblock(fds[0], true)
	ours, launcherEnd := os.NewFile(uintptr(fds[0]), "control"), os.NewFile(uintptr(fds[1]), "launcher")
	defer launcherEnd.Close()
	control.mu.Lock()
	f, sock, pids, told := control.f, control.sock, control.pids, control.told
	control.f, control.sock, control.pids, control.told = ours, true, nil, nil
	control.mu.Unlock()
	defer func() {
		ours.Close()
		control.mu.Lock()
		control.f, control.sock, control.pids, control.told = f, sock, pids, told
		control.mu.Unlock()
	}()
	go serveControl(ours)
	if _, err := launcherEnd.Write([]byte(contract.PidAnswer(2, 1001) + "\n" + contract.PidAnswer(3, 1002) + "\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		control.mu.Lock()
		n := len(control.told)
		control.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the told pids were not taken")
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, ok := askPids(ctx, []int{2, 3})
	if !ok || got[2] != 1001 || got[3] != 1002 {
		t.Errorf("askPids = %v, %v; want 2: 1001, 3: 1002", got, ok)
	}
	// Nothing was asked: the next line the launcher reads is the question
	// about rank 4.
	questions := bufio.NewScanner(launcherEnd)
	answered := make(chan map[int]int, 1)
	go func() {
		got, _ := askPids(ctx, []int{4})
		answered <- got
	}()
	if !questions.Scan() {
		t.Fatal(questions.Err())
	}
	if q, want := questions.Text(), contract.PidQuery(4); q != want {
		t.Fatalf("the launcher was asked %q first, want %q", q, want)
	}
	launcherEnd.Write([]byte(contract.PidAnswer(4, 1003) + "\n"))
	if got := <-answered; got[4] != 1003 {
		t.Errorf("askPids about rank 4 = %v, want 1003", got)
	}
}
