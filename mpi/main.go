package mpi

import (
	"context"
	"fmt"
	"os"
)

// Main runs fn as this rank's program, the way a script of mpi4py runs:
// it joins the job (Init), calls fn with the world, and closes the world
// when fn returns. An error from Init, from fn, or from Close is printed
// on stderr and the process exits 1: gorun names the rank and quotes the
// error. Inside fn, Must and Check turn a
// failed call into that same exit, without an if per call.
//
//	func main() {
//		mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
//			sum := mpi.Must(collectives.AllreduceValue(ctx, world, world.Rank(), collectives.Sum))
//			fmt.Println(world.Rank(), sum)
//			return nil
//		})
//	}
//
// Main returns only when fn succeeded; a panic in fn that is not Must's
// goes on as a panic (gorun names the rank and its message). opts are
// Init's.
func Main(fn func(ctx context.Context, world *Comm) error, opts ...Option) {
	ctx := context.Background()
	world, err := Init(ctx, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	err = runMain(ctx, world, fn)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if cerr := world.Close(); err == nil && cerr != nil {
		fmt.Fprintln(os.Stderr, cerr)
		err = cerr
	}
	if err != nil {
		os.Exit(1)
	}
}

// runMain calls fn, and returns the error a Must or Check inside it
// stopped on.
func runMain(ctx context.Context, world *Comm, fn func(context.Context, *Comm) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			m, ok := p.(mustError)
			if !ok {
				panic(p)
			}
			err = m.err
		}
	}()
	return fn(ctx, world)
}

// mustError is what Must and Check panic with, for Main to recover.
type mustError struct{ err error }

func (m mustError) Error() string { return m.err.Error() }
func (m mustError) Unwrap() error { return m.err }

// Must returns v when err is nil. Otherwise, inside Main's fn, the rank
// stops with err as fn's error (Main prints it and exits 1); outside Main,
// Must panics with an error wrapping err. It is template.Must for a
// program's calls:
//
//	n := mpi.Must(collectives.BcastValue(ctx, world, 0, 1000))
func Must[T any](v T, err error) T {
	Check(err)
	return v
}

// Check is Must for a call that returns only an error:
//
//	mpi.Check(collectives.Barrier(ctx, world))
func Check(err error) {
	if err != nil {
		panic(mustError{err})
	}
}
