package mpi_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// A program run on its own (not under gorun) is a world of one.
func ExampleInit() {
	ctx := context.Background()
	world, err := mpi.Init(ctx)
	if err != nil {
		panic(err)
	}
	defer world.Close()
	fmt.Println("rank", world.Rank(), "of", world.Size())
	// Output: rank 0 of 1
}

func ExampleComm_Send() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			return c.Send(ctx, 1, 7, []byte("hello"))
		}
		msg, st, err := c.Recv(ctx, 0, 7)
		fmt.Printf("rank 1 got %q from rank %d, tag %d, %d bytes\n", msg, st.Source, st.Tag, st.Count)
		return err
	})
	// Output: rank 1 got "hello" from rank 0, tag 7, 5 bytes
}

func ExampleComm_Recv_anySource() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() != 0 {
			return c.Send(ctx, 0, c.Rank(), []byte{byte(c.Rank() * 10)})
		}
		var got []int
		for range c.Size() - 1 {
			msg, st, err := c.Recv(ctx, mpi.AnySource, mpi.AnyTag)
			if err != nil {
				return err
			}
			got = append(got, st.Source*1000+int(msg[0]))
		}
		sort.Ints(got)
		fmt.Println(got)
		return nil
	})
	// Output: [1010 2020 3030]
}

func ExampleComm_Sendrecv() {
	var mu sync.Mutex
	var lines []string
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		next, prev := (c.Rank()+1)%c.Size(), (c.Rank()+c.Size()-1)%c.Size()
		got, _, err := c.Sendrecv(ctx, next, 0, []byte{byte(c.Rank())}, prev, 0)
		mu.Lock()
		lines = append(lines, fmt.Sprintf("rank %d got %d", c.Rank(), got[0]))
		mu.Unlock()
		return err
	})
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// rank 0 got 3
	// rank 1 got 0
	// rank 2 got 1
	// rank 3 got 2
}

func ExampleComm_Isend() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() != 0 {
			_, err := c.Isend(0, 0, []byte(fmt.Sprint("from ", c.Rank()))).Wait(ctx)
			return err
		}
		r1, r2 := c.Irecv(1, 0), c.Irecv(2, 0)
		if err := mpi.WaitAll(ctx, r1, r2); err != nil {
			return err
		}
		fmt.Println(string(r1.Data()), "and", string(r2.Data()))
		return nil
	})
	// Output: from 1 and from 2
}

func ExampleWaitAny() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			if err := c.Send(ctx, 0, 5, []byte("five")); err != nil {
				return err
			}
			_, _, err := c.Recv(ctx, 0, 6) // stay until rank 0 is done
			return err
		}
		reqs := []*mpi.Request{c.Irecv(1, 4), c.Irecv(1, 5)}
		i, st, err := mpi.WaitAny(ctx, reqs...)
		fmt.Println("request", i, "tag", st.Tag, string(reqs[i].Data()))
		reqs[0].Cancel()
		if err != nil {
			return err
		}
		return c.Send(ctx, 1, 6, nil)
	})
	// Output: request 1 tag 5 five
}

func ExampleRequest_Cancel() {
	mpitest.World(context.Background(), 1, func(ctx context.Context, c *mpi.Comm) error {
		r := c.Irecv(0, 0)
		fmt.Println(r.Cancel())
		_, err := r.Wait(ctx)
		fmt.Println(err)
		return nil
	})
	// Output:
	// true
	// mpi: request canceled
}

func ExampleComm_Probe() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			return c.Send(ctx, 0, 3, make([]byte, 1000))
		}
		st, err := c.Probe(ctx, mpi.AnySource, mpi.AnyTag)
		if err != nil {
			return err
		}
		fmt.Println("a message of", st.Count, "bytes from rank", st.Source, "waits")
		_, _, err = c.Recv(ctx, st.Source, st.Tag)
		return err
	})
	// Output: a message of 1000 bytes from rank 1 waits
}

func ExampleSendSlice() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			return mpi.SendSlice(ctx, c, 1, 0, []float64{1.5, 2.5, 3.5})
		}
		xs, st, err := mpi.RecvSlice[float64](ctx, c, 0, 0)
		fmt.Println(xs, st.Count, "bytes")
		return err
	})
	// Output: [1.5 2.5 3.5] 24 bytes
}

func ExampleComm_Split() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		// Even and odd world ranks form two communicators.
		half, err := c.Split(ctx, c.Rank()%2, c.Rank())
		if err != nil {
			return err
		}
		defer half.Close()
		if c.Rank() == 3 {
			fmt.Println("world rank 3 is rank", half.Rank(), "of", half.Size())
		}
		return nil
	})
	// Output: world rank 3 is rank 1 of 2
}

func ExampleComm_Dup() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		lib, err := c.Dup(ctx) // a library's private channel
		if err != nil {
			return err
		}
		defer lib.Close()
		if c.Rank() == 0 {
			if err := lib.Send(ctx, 1, 0, []byte("library")); err != nil {
				return err
			}
			return c.Send(ctx, 1, 0, []byte("user"))
		}
		msg, _, err := c.Recv(ctx, 0, mpi.AnyTag) // never sees the library's message
		fmt.Println(string(msg))
		_, _, err2 := lib.Recv(ctx, 0, 0)
		if err == nil {
			err = err2
		}
		return err
	})
	// Output: user
}

func ExampleComm_Abort() {
	err := mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			c.Abort(3) // does not return
		}
		_, _, err := c.Recv(context.WithoutCancel(ctx), 1, 0)
		var ab *mpi.AbortError
		if errors.As(err, &ab) {
			fmt.Printf("rank 0: job aborted by rank %d with code %d\n", ab.Rank, ab.Code)
			return nil // rank 1's own error is the one World reports
		}
		return err
	})
	fmt.Println(err)
	// Output:
	// rank 0: job aborted by rank 1 with code 3
	// rank 1: called Abort(3)
}

func ExampleComm_Multicast() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		half, err := c.Split(ctx, c.Rank()%2, c.Rank())
		if err != nil {
			return err
		}
		defer half.Close()
		if c.Rank() == 0 {
			fmt.Println("world:", c.Multicast())
			fmt.Println("half of it:", half.Multicast())
		}
		return nil
	})
	// Output:
	// world: true
	// half of it: false
}

func ExampleComm_Err() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		lib, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		before := lib.Err()
		lib.Close()
		if c.Rank() == 0 {
			fmt.Println(before, errors.Is(lib.Err(), mpi.ErrClosed), c.Err())
		}
		return nil
	})
	// Output: <nil> true <nil>
}

func ExampleComm_RecvInto() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			for _, s := range []string{"first", "second"} {
				if err := c.Send(ctx, 1, 0, []byte(s)); err != nil {
					return err
				}
			}
			return nil
		}
		buf := make([]byte, 64) // one buffer for every message
		for range 2 {
			st, err := c.RecvInto(ctx, 0, 0, buf)
			if err != nil {
				return err
			}
			fmt.Println(string(buf[:st.Count]))
		}
		return nil
	})
	// Output:
	// first
	// second
}

func ExampleComm_IrecvInto() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			return c.Send(ctx, 1, 0, []byte("a message too long"))
		}
		r := c.IrecvInto(0, 0, make([]byte, 4))
		_, err := r.Wait(ctx)
		fmt.Println(errors.Is(err, mpi.ErrTruncate))
		return nil
	})
	// Output: true
}

func ExampleAsBytes() {
	xs := []int32{1, -1}
	b := mpi.AsBytes(xs) // raw little-endian bytes, as they travel
	fmt.Println(b)
	ys, err := mpi.FromBytes[int32](b)
	fmt.Println(ys, err)
	// Output:
	// [1 0 0 0 255 255 255 255]
	// [1 -1] <nil>
}

func ExampleWithSingleCopy() {
	// Every byte through the bus, even between ranks of one machine; and
	// SendAll as one send per rank rather than one fanned-out publish.
	opts := []mpi.Option{mpi.WithSingleCopy(false), mpi.WithMulticast(false), mpi.WithBuffers(16<<20, 8<<20)}
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			fmt.Println(c.Multicast())
			return c.SendAll(ctx, 0, make([]byte, 1<<20))
		}
		_, st, err := c.Recv(ctx, 0, 0)
		if c.Rank() == 1 {
			fmt.Println(st.Count)
		}
		return err
	}, opts...)
	// Output:
	// false
	// 1048576
}

// A rank that closed its world is gone for the others: what it sent before
// is received, and then a receive from it fails at once with ErrPeerLost.
func ExampleErrPeerLost() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			if err := c.Send(ctx, 0, 0, []byte("last words")); err != nil {
				return err
			}
			return c.Close()
		}
		msg, _, _ := c.Recv(ctx, 1, 0)
		fmt.Println(string(msg))
		_, _, err := c.Recv(ctx, 1, 0)
		fmt.Println(errors.Is(err, mpi.ErrPeerLost), err)
		return nil
	})
	// Output:
	// last words
	// true mpi: recv rank 1: tag 0, comm world: peer closed its world
}

// A nil ctx is an error, not a panic, and the communicator goes on.
func ExampleErrNilContext() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			var none context.Context // nil: a mistake
			err := c.Send(none, 1, 0, []byte("hi"))
			fmt.Println(err, errors.Is(err, mpi.ErrNilContext))
			return c.Send(ctx, 1, 0, []byte("hi"))
		}
		_, _, err := c.Recv(ctx, 0, 0)
		return err
	})
	// Output: mpi: send: mpi: nil context.Context true
}
