package collectives

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestRandomMemory runs random programs over the in-memory transport, with
// seeded delays and frames reordered across senders and streams: a third
// are point-to-point programs (pcase), the others TestRandom's collective
// cases. The network's faults are drawn from the case's seed too, and a
// failure names the command that replays it alone:
//
//	go test ./collectives -run TestRandomMemory -random.seed=SEED -random.memcases=1
var randomMemCases = flag.Int("random.memcases", 1000, "how many cases TestRandomMemory runs")

func TestRandomMemory(t *testing.T) {
	base, cases := randomSeeds(t, *randomMemCases, 200)
	for i := range cases {
		seed := base + uint64(i)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			net := mpitest.NewNet(mpitest.Faults{Seed: seed, MaxDelay: 200 * time.Microsecond, Reorder: true})
			var err error
			var what fmt.Stringer
			if seed%3 == 0 {
				pc := drawP2P(seed)
				what = pc
				err = net.World(ctx, pc.n, func(ctx context.Context, c *mpi.Comm) error {
					return pc.run(ctx, c)
				}, pc.opts()...)
			} else {
				rc := drawCase(seed)
				what = rc
				err = net.World(ctx, rc.n, func(ctx context.Context, c *mpi.Comm) error {
					return runRandom(ctx, c, rc)
				}, mpi.WithMulticast(rc.mc), mpi.WithSingleCopy(rc.sc))
			}
			if err != nil {
				t.Errorf("%v\n  case: %v\n  replay: go test ./collectives -run TestRandomMemory -random.seed=%d -random.memcases=1", err, what, seed)
			}
		})
	}
}

// pcase is a random point-to-point program: every rank sends msgs[src][dst]
// messages to each rank (itself included), all at once with Isend, and
// receives what comes to it in one of three ways, checked against what was
// sent: by sender in sender order with AnyTag ("ordered"), by sender and
// then tag in random order ("tagged"), or from AnySource with AnyTag
// ("any"), where each sender's messages must still come in the order sent.
type pcase struct {
	seed       uint64
	n          int
	msgs       [][][]pmsg // [src][dst]: the messages, in the order sent
	modes      []string   // per receiver
	into       []bool     // per receiver: RecvInto a buffer
	eagerLimit int        // 0: the default
	eager      int        // the eager budget (and the smallest window), 0: the defaults
}

// pmsg is one message: its tag and size; its bytes are drawn from
// (seed, src, dst, index).
type pmsg struct{ tag, size int }

func (p pcase) String() string {
	count, bytes := 0, 0
	for _, row := range p.msgs {
		for _, ms := range row {
			for _, m := range ms {
				count++
				bytes += m.size
			}
		}
	}
	return fmt.Sprintf("seed=%d p2p n=%d messages=%d bytes=%d modes=%v into=%v eagerLimit=%d eagerBudget=%d", p.seed, p.n, count, bytes, p.modes, p.into, p.eagerLimit, p.eager)
}

func (p pcase) opts() []mpi.Option {
	var o []mpi.Option
	if p.eagerLimit > 0 {
		o = append(o, mpi.WithEagerLimit(p.eagerLimit))
	}
	if p.eager > 0 {
		o = append(o, mpi.WithBuffers(p.eager, 2<<20)) // the smallest window: one grant at a time
	}
	return o
}

func drawP2P(seed uint64) pcase {
	rng := rand.New(rand.NewPCG(seed, 0x243f6a8885a308d3))
	p := pcase{seed: seed, n: 2 + rng.IntN(7)}
	if rng.IntN(3) == 0 {
		p.eagerLimit = 512 + rng.IntN(4096) // more rendezvous, with smaller messages
	}
	if rng.IntN(3) == 0 {
		p.eager = 64 << 10 // little credit: sends wait for it
	}
	sizes := []int{8, 16, 100, 1000, 4095, 4096, 5000, 60000, 64 << 10, 64<<10 + 1, 200000, 1 << 20}
	p.msgs = make([][][]pmsg, p.n)
	for src := range p.n {
		p.msgs[src] = make([][]pmsg, p.n)
		for dst := range p.n {
			k := rng.IntN(7)
			for range k {
				size := 8 + rng.IntN(64)
				if rng.IntN(4) == 0 {
					size = sizes[rng.IntN(len(sizes))]
				}
				p.msgs[src][dst] = append(p.msgs[src][dst], pmsg{tag: rng.IntN(3), size: size})
			}
		}
	}
	for range p.n {
		p.modes = append(p.modes, []string{"ordered", "tagged", "any"}[rng.IntN(3)])
		p.into = append(p.into, rng.IntN(3) == 0)
	}
	return p
}

// body is the bytes of message i from src to dst: its identity in the
// first 8, then bytes drawn from it.
func (p pcase) body(src, dst, i int) []byte {
	m := p.msgs[src][dst][i]
	b := make([]byte, m.size)
	binary.LittleEndian.PutUint16(b, uint16(src))
	binary.LittleEndian.PutUint16(b[2:], uint16(dst))
	binary.LittleEndian.PutUint32(b[4:], uint32(i))
	x := byte(p.seed) ^ byte(src*31+dst*7+i)
	for j := 8; j < len(b); j++ {
		b[j] = x + byte(j)
	}
	return b
}

func (p pcase) run(ctx context.Context, c *mpi.Comm) error {
	me := c.Rank()
	var sends []*mpi.Request
	for dst := range p.n {
		for i, m := range p.msgs[me][dst] {
			sends = append(sends, c.Isend(dst, m.tag, p.body(me, dst, i)))
		}
	}
	// next[src] is the index of the next message expected from src; for
	// "tagged", per tag.
	next := make([]int, p.n)
	check := func(got []byte, st mpi.Status, want int) error {
		src := st.Source
		if src < 0 || src >= p.n {
			return fmt.Errorf("a message from rank %d", src)
		}
		if want < 0 {
			want = next[src]
		}
		if want >= len(p.msgs[src][me]) {
			return fmt.Errorf("message %d from rank %d: it sent only %d", want, src, len(p.msgs[src][me]))
		}
		m := p.msgs[src][me][want]
		if st.Tag != m.tag || st.Count != m.size || !slices.Equal(got, p.body(src, me, want)) {
			i := -1
			if len(got) >= 8 {
				i = int(binary.LittleEndian.Uint32(got[4:]))
			}
			return fmt.Errorf("from rank %d: got message %d (tag %d, %d bytes), want message %d (tag %d, %d bytes)", src, i, st.Tag, st.Count, want, m.tag, m.size)
		}
		return nil
	}
	recv := func(src, tag, size int) ([]byte, mpi.Status, error) {
		if !p.into[me] {
			return c.Recv(ctx, src, tag)
		}
		buf := make([]byte, size)
		st, err := c.RecvInto(ctx, src, tag, buf)
		return buf[:min(st.Count, len(buf))], st, err
	}
	rng := rand.New(rand.NewPCG(p.seed, uint64(me)))
	switch p.modes[me] {
	case "ordered":
		for _, src := range rng.Perm(p.n) {
			for range p.msgs[src][me] {
				got, st, err := recv(src, mpi.AnyTag, p.msgs[src][me][next[src]].size)
				if err != nil {
					return err
				}
				if err := check(got, st, -1); err != nil {
					return err
				}
				next[src]++
			}
		}
	case "tagged":
		for _, src := range rng.Perm(p.n) {
			for _, tag := range rng.Perm(3) {
				for i, m := range p.msgs[src][me] {
					if m.tag != tag {
						continue
					}
					got, st, err := recv(src, tag, m.size)
					if err != nil {
						return err
					}
					if err := check(got, st, i); err != nil {
						return err
					}
				}
			}
		}
	case "any":
		total, largest := 0, 0
		for src := range p.n {
			total += len(p.msgs[src][me])
			for _, m := range p.msgs[src][me] {
				largest = max(largest, m.size)
			}
		}
		for range total {
			got, st, err := recv(mpi.AnySource, mpi.AnyTag, largest)
			if err != nil {
				return err
			}
			if err := check(got, st, -1); err != nil {
				return err
			}
			next[st.Source]++
		}
	}
	return mpi.WaitAll(ctx, sends...)
}
