package mpi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

type celsius float64

type particle struct {
	ID    int
	Name  string
	Pos   [3]float64
	Tags  map[string]int
	Trail []celsius
}

// roundTrip sends v from rank 0 to rank 1 with SendValue and returns what
// RecvValue made of it, with its Status.
func roundTrip[T any](t *testing.T, v T) (got T, st mpi.Status) {
	t.Helper()
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			return mpi.SendValue(ctx, c, 1, 5, v)
		}
		var err error
		got, st, err = mpi.RecvValue[T](ctx, c, 0, 5)
		return err
	})
	return got, st
}

func TestValueRoundTrip(t *testing.T) {
	p := particle{ID: 7, Name: "p7", Pos: [3]float64{1, 2.5, -3}, Tags: map[string]int{"a": 1}, Trail: []celsius{20.5, 21}}
	check := func(name string, sent, got any, st mpi.Status, wantCount int) {
		t.Helper()
		if !reflect.DeepEqual(sent, got) {
			t.Errorf("%s: sent %#v, received %#v", name, sent, got)
		}
		if wantCount >= 0 && st.Count != wantCount {
			t.Errorf("%s: Status.Count %d, want %d", name, st.Count, wantCount)
		}
		if st.Source != 0 || st.Tag != 5 {
			t.Errorf("%s: Status %+v, want source 0, tag 5", name, st)
		}
	}
	t.Run("int", func(t *testing.T) { got, st := roundTrip(t, -42); check("int", -42, got, st, 8) })
	t.Run("uint8", func(t *testing.T) { got, st := roundTrip(t, uint8(200)); check("uint8", uint8(200), got, st, 1) })
	t.Run("complex128", func(t *testing.T) { got, st := roundTrip(t, 1+2i); check("complex128", 1+2i, got, st, 16) })
	t.Run("named", func(t *testing.T) { got, st := roundTrip(t, celsius(36.6)); check("named", celsius(36.6), got, st, 8) })
	t.Run("[]float64", func(t *testing.T) {
		xs := []float64{1, 2, 3, 1e300}
		got, st := roundTrip(t, xs)
		check("[]float64", xs, got, st, 32)
	})
	t.Run("[]celsius/empty", func(t *testing.T) {
		got, st := roundTrip(t, []celsius{})
		check("empty", []celsius{}, got, st, 0)
	})
	t.Run("[]byte", func(t *testing.T) {
		got, st := roundTrip(t, []byte("raw"))
		check("[]byte", []byte("raw"), got, st, 3)
	})
	t.Run("string", func(t *testing.T) { got, st := roundTrip(t, "héllo"); check("string", "héllo", got, st, 6) })
	t.Run("struct", func(t *testing.T) { got, st := roundTrip(t, p); check("struct", p, got, st, -1) })
	t.Run("*struct", func(t *testing.T) { got, st := roundTrip(t, &p); check("*struct", &p, got, st, -1) })
	t.Run("[]struct", func(t *testing.T) {
		ps := []particle{p, {ID: 8}}
		got, st := roundTrip(t, ps)
		check("[]struct", ps, got, st, -1)
	})
	t.Run("map", func(t *testing.T) {
		m := map[int][]float64{1: {1.5}, 2: {2, 3}}
		got, st := roundTrip(t, m)
		check("map", m, got, st, -1)
	})
}

// Numbers and slices of numbers are their raw little-endian bytes, not gob.
func TestAppendValueRaw(t *testing.T) {
	for _, tt := range []struct {
		name string
		got  func() ([]byte, error)
		want []byte
	}{
		{"int64", func() ([]byte, error) { return mpi.AppendValue(nil, int64(0x0102030405060708)) }, []byte{8, 7, 6, 5, 4, 3, 2, 1}},
		{"uint16 after a prefix", func() ([]byte, error) { return mpi.AppendValue([]byte{0xff}, uint16(0x0a0b)) }, []byte{0xff, 0x0b, 0x0a}},
		{"[]uint16", func() ([]byte, error) { return mpi.AppendValue(nil, []uint16{1, 0x0203}) }, []byte{1, 0, 3, 2}},
		{"float32", func() ([]byte, error) { return mpi.AppendValue(nil, float32(1)) }, []byte{0, 0, 0x80, 0x3f}},
		{"complex64", func() ([]byte, error) { return mpi.AppendValue(nil, complex64(1i)) }, []byte{0, 0, 0, 0, 0, 0, 0x80, 0x3f}},
		{"string", func() ([]byte, error) { return mpi.AppendValue(nil, "ab") }, []byte("ab")},
		{"empty slice", func() ([]byte, error) { return mpi.AppendValue(nil, []int{}) }, []byte{}},
	} {
		got, err := tt.got()
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("%s: AppendValue = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	// DecodeValue copies: changing the bytes afterwards changes nothing.
	b, _ := mpi.AppendValue(nil, []int32{1, 2, 3})
	xs, err := mpi.DecodeValue[[]int32](b)
	b[0] = 9
	if err != nil || !reflect.DeepEqual(xs, []int32{1, 2, 3}) {
		t.Errorf("DecodeValue = %v, %v; want [1 2 3] in memory of its own", xs, err)
	}
}

func TestValueErrors(t *testing.T) {
	if _, err := mpi.DecodeValue[int64](make([]byte, 7)); !errors.Is(err, mpi.ErrTruncate) {
		t.Errorf("7 bytes into an int64: %v, want ErrTruncate", err)
	}
	if _, err := mpi.DecodeValue[[]float32](make([]byte, 6)); !errors.Is(err, mpi.ErrTruncate) {
		t.Errorf("6 bytes into []float32: %v, want ErrTruncate", err)
	}
	if _, err := mpi.AppendValue(nil, make(chan int)); err == nil {
		t.Error("AppendValue of a channel: no error")
	}
	if _, err := mpi.DecodeValue[particle]([]byte("not gob")); err == nil {
		t.Error("DecodeValue of garbage into a struct: no error")
	}
	// Over the wire: a message of the wrong length is an error naming the
	// sender, and it is consumed (the next message is received normally).
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			if err := c.Send(ctx, 1, 3, []byte{1, 2, 3}); err != nil {
				return err
			}
			return mpi.SendValue(ctx, c, 1, 3, 99)
		}
		_, _, err := mpi.RecvValue[int](ctx, c, 0, 3)
		if !errors.Is(err, mpi.ErrTruncate) {
			return fmt.Errorf("3 bytes as an int: %v, want ErrTruncate", err)
		}
		v, _, err := mpi.RecvValue[int](ctx, c, mpi.AnySource, 3)
		if err != nil || v != 99 {
			return fmt.Errorf("next message: %v, %v; want 99", v, err)
		}
		return nil
	})
}

// TestRecvValueEmpty: a zero-length message (a stop signal that carries
// nothing) received with RecvValue is the type's zero value with Count 0,
// for a number, a struct (gob), a string and a slice of numbers; the
// message is consumed and the next one is received normally.
func TestRecvValueEmpty(t *testing.T) {
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			for tag := range 4 {
				if err := c.Send(ctx, 1, tag, nil); err != nil {
					return err
				}
			}
			return mpi.SendValue(ctx, c, 1, 0, int64(7))
		}
		check := func(what string, got, want any, st mpi.Status, tag int) error {
			if !reflect.DeepEqual(got, want) || st.Count != 0 || st.Source != 0 || st.Tag != tag {
				return fmt.Errorf("empty message as %s: %#v %+v, want %#v, Count 0 from rank 0, tag %d", what, got, st, want, tag)
			}
			return nil
		}
		n, st, err := mpi.RecvValue[int64](ctx, c, 0, 0)
		if err != nil {
			return fmt.Errorf("empty message as an int64: %w", err)
		}
		if err := check("an int64", n, int64(0), st, 0); err != nil {
			return err
		}
		p, st, err := mpi.RecvValue[particle](ctx, c, 0, 1)
		if err != nil {
			return fmt.Errorf("empty message as a struct: %w", err)
		}
		if err := check("a struct", p, particle{}, st, 1); err != nil {
			return err
		}
		s, st, err := mpi.RecvValue[string](ctx, c, 0, 2)
		if err != nil {
			return fmt.Errorf("empty message as a string: %w", err)
		}
		if err := check("a string", s, "", st, 2); err != nil {
			return err
		}
		xs, st, err := mpi.RecvValue[[]float64](ctx, c, 0, 3)
		if err != nil {
			return fmt.Errorf("empty message as a []float64: %w", err)
		}
		if err := check("a []float64", xs, []float64{}, st, 3); err != nil {
			return err
		}
		n, st, err = mpi.RecvValue[int64](ctx, c, 0, 0)
		if err != nil || n != 7 || st.Count != 8 {
			return fmt.Errorf("the message after: %v %+v %v, want 7 in 8 bytes", n, st, err)
		}
		return nil
	})
}

func BenchmarkSendValue(b *testing.B) {
	type point struct{ X, Y float64 }
	for _, c := range []struct {
		name string
		send func(ctx context.Context, c *mpi.Comm) error
		recv func(ctx context.Context, c *mpi.Comm) error
	}{
		{"[]float64x1024", func(ctx context.Context, c *mpi.Comm) error {
			return mpi.SendValue(ctx, c, 1, 0, make([]float64, 1024))
		}, func(ctx context.Context, c *mpi.Comm) error {
			_, _, err := mpi.RecvValue[[]float64](ctx, c, 0, 0)
			return err
		}},
		{"struct", func(ctx context.Context, c *mpi.Comm) error {
			return mpi.SendValue(ctx, c, 1, 0, point{1, 2})
		}, func(ctx context.Context, c *mpi.Comm) error {
			_, _, err := mpi.RecvValue[point](ctx, c, 0, 0)
			return err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			mpitest.Run(b, 2, func(ctx context.Context, comm *mpi.Comm) error {
				for range b.N {
					var err error
					if comm.Rank() == 0 {
						err = c.send(ctx, comm)
					} else {
						err = c.recv(ctx, comm)
					}
					if err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}
