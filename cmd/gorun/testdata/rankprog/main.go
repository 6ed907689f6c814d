// Command rankprog is the rank program of gorun's end-to-end tests. Every
// rank first prints "pid RANK PID" on stdout, then does what its mode says:
//
//	env                   print the GORUN_* variables (the token's length only) and the args
//	exit RANK CODE        RANK prints "fail UNIXNANO" and exits CODE; the others sleep
//	kill RANK             RANK prints "fail UNIXNANO" and kills itself with SIGKILL; the others sleep
//	panic RANK            RANK prints "fail UNIXNANO" and panics; the others sleep
//	sleep                 sleep (an hour)
//	ignoreterm            ignore SIGTERM, print "ignoring", sleep
//	ignoreterm-exit R C   ignore SIGTERM, then as exit R C
//	nonewline MB          write MB MiB on stdout without a newline
//	setsid-child [R C]    start a grandchild (this program, mode sleep) in a session of its own, sleep (rank R: exit C)
//	setsid-noenv [R C]    as setsid-child, the grandchild with an empty environment (no GORUN_JOB_ID)
//	child                 start a grandchild (this program, mode sleep) in the rank's process group, sleep
//	lines N SIZE CHUNK    write N lines of SIZE bytes to stdout and N to stderr, CHUNK bytes per Write
//	partial               write "partial line" without a newline, and exit
//	stdin                 rank 0 copies stdin to stdout
//	exitall CODE          every rank exits CODE
//	mpirecv RANK CODE     mpi.Init; RANK prints "fail UNIXNANO" and exits CODE; the others block in Recv
//	mpiabort RANK CODE    mpi.Init; RANK prints "fail UNIXNANO" and calls Abort(CODE); the others block in Recv
//	mpisleep              mpi.Init, then sleep
//	mpiexit RANK          mpi.Init; RANK prints "fail UNIXNANO" and exits 0 without Close; the others block in Recv
//	fakeabort RANK F C    mpi.Init; RANK prints mpi's abort line for code 42 on stderr; rank F exits C; the others close and exit 0
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
)

func main() {
	rank, _ := strconv.Atoi(os.Getenv("GORUN_RANK"))
	fmt.Printf("pid %d %d\n", rank, os.Getpid())
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "rankprog: no mode")
		os.Exit(2)
	}
	arg := func(i int) int {
		n, err := strconv.Atoi(os.Args[i])
		if err != nil {
			panic(err)
		}
		return n
	}
	failNow := func() { fmt.Printf("fail %d\n", time.Now().UnixNano()) }
	switch os.Args[1] {
	case "env":
		for _, kv := range os.Environ() {
			if k, v, _ := strings.Cut(kv, "="); k == "GORUN_NATS_TOKEN" || k == "GORUN_NATS_CREDS" {
				fmt.Printf("%s has %d bytes, hash %x\n", k, len(v), sha256.Sum256([]byte(v)))
			} else if strings.HasPrefix(k, "GORUN_") || strings.HasPrefix(k, "TESTVAR") {
				fmt.Println(kv)
			}
		}
		wd, _ := os.Getwd()
		fmt.Printf("wd %s\n", wd)
		fmt.Printf("gomaxprocs %d\n", runtime.GOMAXPROCS(0))
		fmt.Printf("args %q\n", os.Args[2:])
	case "exit", "kill", "panic", "ignoreterm-exit":
		if os.Args[1] == "ignoreterm-exit" {
			signal.Ignore(syscall.SIGTERM)
		}
		if rank == arg(2) {
			time.Sleep(300 * time.Millisecond) // let the others start
			failNow()
			switch os.Args[1] {
			case "exit", "ignoreterm-exit":
				os.Exit(arg(3))
			case "kill":
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			case "panic":
				panic("rankprog: on purpose")
			}
		}
		time.Sleep(time.Hour)
	case "sleep":
		time.Sleep(time.Hour)
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring")
		time.Sleep(time.Hour)
	case "nonewline":
		// arg(2) MiB without a single newline.
		buf := bytes.Repeat([]byte("x"), 1<<20)
		for range arg(2) {
			if _, err := os.Stdout.Write(buf); err != nil {
				os.Exit(3)
			}
		}
	case "setsid-child", "setsid-noenv":
		// A child in a session of its own: out of the rank's process group.
		cmd := exec.Command(os.Args[0], "sleep")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if os.Args[1] == "setsid-noenv" {
			cmd.Env = []string{} // nothing says whose job it is
		}
		if err := cmd.Start(); err != nil {
			panic(err)
		}
		fmt.Printf("child %d\n", cmd.Process.Pid)
		if len(os.Args) == 4 && rank == arg(2) {
			time.Sleep(500 * time.Millisecond)
			os.Exit(arg(3))
		}
		time.Sleep(time.Hour)
	case "child":
		cmd := exec.Command(os.Args[0], "sleep")
		cmd.Stdout = os.Stdout
		if err := cmd.Start(); err != nil {
			panic(err)
		}
		fmt.Printf("child %d\n", cmd.Process.Pid)
		time.Sleep(time.Hour)
	case "lines":
		n, size, chunk := arg(2), arg(3), arg(4)
		done := make(chan bool)
		go func() { writeLines(os.Stderr, "E", rank, n, size, chunk); done <- true }()
		writeLines(os.Stdout, "O", rank, n, size, chunk)
		<-done
	case "partial":
		fmt.Print("partial line")
	case "stdin":
		if rank == 0 {
			io.Copy(os.Stdout, os.Stdin)
		}
	case "exitall":
		os.Exit(arg(2))
	case "mpirecv", "mpiabort", "mpisleep":
		ctx := context.Background()
		world := initWorld(ctx)
		fmt.Println("ready")
		if os.Args[1] == "mpisleep" {
			time.Sleep(time.Hour)
		}
		if world.Rank() == arg(2) {
			time.Sleep(300 * time.Millisecond)
			failNow()
			if os.Args[1] == "mpiabort" {
				world.Abort(arg(3))
			}
			os.Exit(arg(3))
		}
		_, _, err := world.Recv(ctx, mpi.AnySource, 0)
		fmt.Fprintln(os.Stderr, "rankprog: Recv returned:", err)
		os.Exit(1)
	case "mpiexit", "fakeabort":
		ctx := context.Background()
		world := initWorld(ctx)
		fmt.Println("ready")
		if os.Args[1] == "fakeabort" {
			if world.Rank() == arg(2) {
				fmt.Fprintf(os.Stderr, "mpi: rank %d aborted the job with code 42\n", world.Rank())
			}
			if world.Rank() == arg(3) {
				time.Sleep(300 * time.Millisecond)
				os.Exit(arg(4))
			}
			if err := world.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "rankprog:", err)
				os.Exit(1)
			}
			return
		}
		if world.Rank() == arg(2) {
			time.Sleep(300 * time.Millisecond)
			failNow()
			os.Exit(0)
		}
		_, _, err := world.Recv(ctx, mpi.AnySource, 0)
		fmt.Fprintln(os.Stderr, "rankprog: Recv returned:", err)
		os.Exit(1)
	case "mpisum":
		// After Init and ARG ms, a ring pass, then rank 0 sums every rank.
		ctx := context.Background()
		world := initWorld(ctx)
		fmt.Println("ready")
		time.Sleep(time.Duration(arg(2)) * time.Millisecond)
		if err := mpiSum(ctx, world); err != nil {
			fmt.Fprintln(os.Stderr, "rankprog:", err)
			os.Exit(1)
		}
		world.Close()
	case "stream":
		// Every rank but 0 sends rank 0 ARG messages of 60 KB, then two of
		// 4 MiB; rank 0 says "ready" once joined, and checks that each
		// sender's messages come whole and in order.
		ctx := context.Background()
		world := initWorld(ctx)
		if err := stream(ctx, world, arg(2)); err != nil {
			fmt.Fprintln(os.Stderr, "rankprog:", err)
			os.Exit(1)
		}
		world.Close()
	default:
		fmt.Fprintln(os.Stderr, "rankprog: unknown mode", os.Args[1])
		os.Exit(2)
	}
}

// writeLines writes n lines "KIND RANK I xxxx...\n" of size bytes (newline
// included), chunk bytes per Write.
func writeLines(w io.Writer, kind string, rank, n, size, chunk int) {
	for i := range n {
		line := Line(kind, rank, i, size)
		for len(line) > 0 {
			k := min(chunk, len(line))
			if _, err := w.Write(line[:k]); err != nil {
				os.Exit(3)
			}
			line = line[k:]
		}
	}
}

// Line is line i of rank's output of kind, size bytes with the newline.
func Line(kind string, rank, i, size int) []byte {
	head := fmt.Sprintf("%s %d %d ", kind, rank, i)
	b := []byte(head)
	c := byte('a' + (rank*7+i)%26)
	for len(b) < size-1 {
		b = append(b, c)
	}
	return append(b, '\n')
}

// mpiSum passes each rank's number around the ring and checks it, then
// has rank 0 print the sum of every rank's.
func mpiSum(ctx context.Context, world *mpi.Comm) error {
	r, n := world.Rank(), world.Size()
	if err := world.Send(ctx, (r+1)%n, 1, []byte{byte(r)}); err != nil {
		return err
	}
	got, _, err := world.Recv(ctx, (r+n-1)%n, 1)
	if err != nil {
		return err
	}
	if len(got) != 1 || int(got[0]) != (r+n-1)%n {
		return fmt.Errorf("ring: got %v from rank %d", got, (r+n-1)%n)
	}
	if r != 0 {
		return world.Send(ctx, 0, 2, []byte{byte(r)})
	}
	sum := 0
	for src := 1; src < n; src++ {
		b, _, err := world.Recv(ctx, src, 2)
		if err != nil {
			return err
		}
		sum += int(b[0])
	}
	fmt.Println("sum", sum)
	return nil
}

// stream is the "stream" mode: n small and two large messages from every
// rank to rank 0, each filled with its sender and index.
func stream(ctx context.Context, world *mpi.Comm, n int) error {
	sizes := func(i int) int {
		if i < n {
			return 60 << 10
		}
		return 4 << 20
	}
	fill := func(b []byte, src, i int) {
		for j := range b {
			b[j] = byte(src*31 + i + j)
		}
	}
	if world.Rank() != 0 {
		for i := range n + 2 {
			b := make([]byte, sizes(i))
			fill(b, world.Rank(), i)
			if err := world.Send(ctx, 0, 3, b); err != nil {
				return err
			}
		}
		return nil
	}
	fmt.Println("ready")
	next := make([]int, world.Size())
	total := 0
	for range (world.Size() - 1) * (n + 2) {
		b, st, err := world.Recv(ctx, mpi.AnySource, 3)
		if err != nil {
			return err
		}
		i := next[st.Source]
		want := make([]byte, sizes(i))
		fill(want, st.Source, i)
		if !bytes.Equal(b, want) {
			return fmt.Errorf("message %d from rank %d: %d bytes, not what was sent", i, st.Source, len(b))
		}
		next[st.Source]++
		total += len(b)
	}
	fmt.Println("got", total)
	return nil
}

// initWorld joins the job, or exits 1 saying why.
func initWorld(ctx context.Context) *mpi.Comm {
	world, err := mpi.Init(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rankprog:", err)
		os.Exit(1)
	}
	return world
}
