package mpi_test

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// A shift along a line, not a ring: the end ranks name ProcNull, and the
// same Sendrecv runs everywhere.
func ExampleProcNull() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		left, right := c.Rank()-1, c.Rank()+1
		if left < 0 {
			left = mpi.ProcNull
		}
		if right == c.Size() {
			right = mpi.ProcNull
		}
		b, st, err := c.Sendrecv(ctx, right, 0, []byte{byte(10 * c.Rank())}, left, 0)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println("rank 0 got", len(b), "bytes from", st.Source, "with tag", st.Tag)
		}
		return nil
	})
	// Output: rank 0 got 0 bytes from -2 with tag -1
}

func ExampleComm_Iprobe() {
	mpitest.World(context.Background(), 1, func(ctx context.Context, c *mpi.Comm) error {
		_, ok, _ := c.Iprobe(mpi.AnySource, mpi.AnyTag)
		fmt.Println("before:", ok)
		if err := c.Send(ctx, 0, 3, []byte("abc")); err != nil { // to itself: there at once
			return err
		}
		st, ok, _ := c.Iprobe(mpi.AnySource, mpi.AnyTag)
		fmt.Println("after:", ok, "tag", st.Tag, st.Count, "bytes")
		_, _, err := c.Recv(ctx, 0, 3)
		return err
	})
	// Output:
	// before: false
	// after: true tag 3 3 bytes
}

// Two workers of one rank share the incoming messages: each takes the one
// it probed, and no other can.
func ExampleComm_Mprobe() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() != 0 {
			return c.Send(ctx, 0, c.Rank(), []byte(fmt.Sprint("from ", c.Rank())))
		}
		got := make(chan string, 2)
		for range 2 {
			go func() {
				m, st, err := c.Mprobe(ctx, mpi.AnySource, mpi.AnyTag)
				if err != nil {
					got <- err.Error()
					return
				}
				b, err := m.Recv()
				if err != nil {
					got <- err.Error()
					return
				}
				got <- fmt.Sprintf("%s, tag %d", b, st.Tag)
			}()
		}
		a, b := <-got, <-got
		if a > b {
			a, b = b, a
		}
		fmt.Println(a)
		fmt.Println(b)
		return nil
	})
	// Output:
	// from 1, tag 1
	// from 2, tag 2
}

func ExampleComm_Improbe() {
	mpitest.World(context.Background(), 1, func(ctx context.Context, c *mpi.Comm) error {
		_, _, ok, _ := c.Improbe(0, 1)
		fmt.Println("nothing yet:", !ok)
		if err := c.Send(ctx, 0, 1, []byte("hi")); err != nil {
			return err
		}
		m, st, ok, err := c.Improbe(0, 1)
		if err != nil || !ok {
			return fmt.Errorf("improbe: %v, %v", ok, err)
		}
		b, err := m.Recv()
		fmt.Printf("%q, %d bytes\n", b, st.Count)
		return err
	})
	// Output:
	// nothing yet: true
	// "hi", 2 bytes
}

func ExampleMessage_Recv() {
	mpitest.World(context.Background(), 1, func(ctx context.Context, c *mpi.Comm) error {
		if err := c.Send(ctx, 0, 0, []byte("once")); err != nil {
			return err
		}
		m, _, err := c.Mprobe(ctx, 0, 0)
		if err != nil {
			return err
		}
		b, err := m.Recv()
		fmt.Printf("%q %v\n", b, err)
		_, err = m.Recv()
		fmt.Println(err)
		return nil
	})
	// Output:
	// "once" <nil>
	// mpi: message recv: the message was already received
}

func ExampleRequest_Test() {
	mpitest.World(context.Background(), 1, func(ctx context.Context, c *mpi.Comm) error {
		r := c.Irecv(0, 2)
		_, done, _ := r.Test()
		fmt.Println("done:", done)
		if err := c.Send(ctx, 0, 2, []byte("x")); err != nil {
			return err
		}
		st, done, err := r.Test()
		fmt.Println("done:", done, "tag", st.Tag)
		return err
	})
	// Output:
	// done: false
	// done: true tag 2
}

func ExampleTestAll() {
	mpitest.World(context.Background(), 1, func(ctx context.Context, c *mpi.Comm) error {
		reqs := []*mpi.Request{c.Irecv(0, 1), nil, c.Irecv(0, 2)} // nil: a null request
		ok, _ := mpi.TestAll(reqs...)
		fmt.Println(ok)
		for _, tag := range []int{1, 2} {
			if err := c.Send(ctx, 0, tag, nil); err != nil {
				return err
			}
		}
		ok, err := mpi.TestAll(reqs...)
		fmt.Println(ok)
		return err
	})
	// Output:
	// false
	// true
}

func ExampleTestAny() {
	mpitest.World(context.Background(), 1, func(ctx context.Context, c *mpi.Comm) error {
		reqs := []*mpi.Request{c.Irecv(0, 1), c.Irecv(0, 2)}
		i, _, ok, _ := mpi.TestAny(reqs...)
		fmt.Println(i, ok)
		if err := c.Send(ctx, 0, 2, nil); err != nil {
			return err
		}
		i, st, ok, err := mpi.TestAny(reqs...)
		fmt.Println(i, ok, "tag", st.Tag)
		reqs[0].Cancel()
		return err
	})
	// Output:
	// -1 false
	// 1 true tag 2
}

// WaitSome in a loop over one slice: each call returns what completed
// since the last, and nil once all are returned.
func ExampleWaitSome() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			for tag := range 3 {
				if err := c.Send(ctx, 0, tag, nil); err != nil {
					return err
				}
			}
			return nil
		}
		reqs := []*mpi.Request{c.Irecv(1, 0), c.Irecv(1, 1), c.Irecv(1, 2)}
		n := 0
		for {
			idx, err := mpi.WaitSome(ctx, reqs...)
			if err != nil {
				return err
			}
			if idx == nil {
				break
			}
			n += len(idx)
		}
		fmt.Println(n, "received")
		return nil
	})
	// Output: 3 received
}

// Ssend returns only once the receiver has matched the message: here,
// after rank 1 has said it is about to receive.
func ExampleComm_Ssend() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			fmt.Println("rank 1 receives")
			_, _, err := c.Recv(ctx, 0, 0)
			return err
		}
		err := c.Ssend(ctx, 1, 0, []byte("sync"))
		fmt.Println("rank 0's Ssend returned")
		return err
	})
	// Output:
	// rank 1 receives
	// rank 0's Ssend returned
}

func ExampleComm_Issend() {
	mpitest.World(context.Background(), 1, func(ctx context.Context, c *mpi.Comm) error {
		r := c.Issend(0, 4, []byte("to myself"))
		_, done, _ := r.Test()
		fmt.Println("matched:", done)
		if _, _, err := c.Recv(ctx, 0, 4); err != nil {
			return err
		}
		_, done, err := r.Test()
		fmt.Println("matched:", done)
		return err
	})
	// Output:
	// matched: false
	// matched: true
}
