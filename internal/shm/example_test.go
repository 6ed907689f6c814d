//go:build linux

package shm_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/gorun-hpc/gorun/internal/shm"
)

// The launcher creates the segment for a host's two ranks; each rank opens
// it (here both in one process) and they exchange a frame; the launcher
// removes it once the ranks have it mapped.
func Example() {
	path, err := shm.NewPath("")
	if err != nil {
		panic(err)
	}
	if err := shm.Create(path, 2); err != nil {
		panic(err)
	}
	a, err := shm.Open(path, 0)
	if err != nil {
		panic(err)
	}
	defer a.Close()
	b, err := shm.Open(path, 1)
	if err != nil {
		panic(err)
	}
	defer b.Close()
	shm.Remove(path) // both ranks have it mapped: nothing is left behind

	if err := a.Send(1, 7, []byte("header|"), []byte("payload")); err != nil {
		panic(err)
	}
	for {
		f, ok, err := b.Recv(nil)
		if err != nil {
			panic(err)
		}
		if ok {
			fmt.Printf("from local rank %d, stream %d: %s\n", f.Src, f.Stream, f.Data)
			break
		}
		b.Wait(shm.Spin{}, time.Second)
	}
	// Output: from local rank 0, stream 7: header|payload
}

// A full ring refuses a frame at once; the sender keeps it, waits, and
// sends it again once the receiver has made room.
func ExampleEndpoint_Send() {
	path, _ := shm.NewPath("")
	if err := shm.CreateRing(path, 2, shm.MinRingBytes); err != nil {
		panic(err)
	}
	defer shm.Remove(path)
	a, _ := shm.Open(path, 0)
	defer a.Close()
	b, _ := shm.Open(path, 1)
	defer b.Close()

	frame := make([]byte, 300)
	sent := 0
	for a.Send(1, 0, nil, frame) == nil {
		sent++
	}
	fmt.Println("frames in a full ring:", sent)
	b.Recv(nil) // the receiver takes one
	err := a.Send(1, 0, nil, frame)
	for errors.Is(err, shm.ErrFull) {
		a.Wait(shm.Spin{}, time.Second)
		err = a.Send(1, 0, nil, frame)
	}
	fmt.Println("sent once there was room:", err == nil)
	// Output:
	// frames in a full ring: 3
	// sent once there was room: true
}
