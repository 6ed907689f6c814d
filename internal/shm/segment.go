//go:build linux

package shm

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RingBytes is the default capacity of one ring (see the package comment
// for why).
const RingBytes = 256 << 10

// Bounds on what Create makes and Open accepts.
const (
	MinRingBytes = 1 << 10
	MaxRingBytes = 64 << 20
	MaxRanks     = 1024
)

// Dir is where segments live by default: a tmpfs that only this host sees.
const Dir = "/dev/shm"

// prefix starts every segment's name; NewPath and Sweep agree on it.
const prefix = "gorun-shm-"

// The header, the first 128 bytes.
const (
	hdrMagic   = 0                  // uint64, written last by Create
	hdrVersion = 8                  // uint32
	hdrRanks   = 12                 // uint32
	hdrRing    = 16                 // uint32: ring bytes
	hdrSize    = 24                 // uint64: the file's size
	magic      = 0x6d68736e75726f67 // "gorunshm", little-endian
	version    = 5                  // 2: the channel area at the end (coll.go); 3: its slots; 4: its bell words; 5: 4 KiB slots
)

// layout is where everything is, from the header's two figures.
type layout struct {
	n, ring int
}

// A doorbell's line: the futex word, then the pid of the rank that opened
// it (0 once it closed).
const bellPID = 8

func (l layout) bell(r int) int { return lineSize + r*lineSize }
func (l layout) ringsOff() int  { return lineSize + l.n*lineSize }
func (l layout) stride() int    { return ctlSize + l.ring }
func (l layout) ringsEnd() int  { return l.ringsOff() + l.n*(l.n-1)*l.stride() }
func (l layout) size() int      { return l.areaOff() + l.areaSize() }
func (l layout) ringOff(src, dst int) int {
	k := src*(l.n-1) + dst
	if dst > src {
		k--
	}
	return l.ringsOff() + k*l.stride()
}

func (l layout) check() error {
	if l.n < 1 || l.n > MaxRanks {
		return fmt.Errorf("%d local ranks; want 1 to %d", l.n, MaxRanks)
	}
	if l.ring < MinRingBytes || l.ring > MaxRingBytes || l.ring&(l.ring-1) != 0 {
		return fmt.Errorf("ring of %d bytes; want a power of two from %d to %d", l.ring, MinRingBytes, MaxRingBytes)
	}
	return nil
}

// NewPath returns a fresh segment path in dir (Dir if empty): the
// creator's pid, which Sweep reads, and 128 random bits, so that no other
// job can guess it.
func NewPath(dir string) (string, error) {
	if dir == "" {
		dir = Dir
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return filepath.Join(dir, prefix+strconv.Itoa(os.Getpid())+"-"+hex.EncodeToString(b[:])), nil
}

// Create makes the segment for nranks local ranks at path (which must not
// exist), mode 0600, with rings of RingBytes. The host's launcher calls it
// before it starts the ranks, and Remove when they have opened it or the
// job ended.
func Create(path string, nranks int) error {
	return CreateRing(path, nranks, RingBytes)
}

// CreateRing is Create with rings of ringBytes (a power of two from
// MinRingBytes to MaxRingBytes).
func CreateRing(path string, nranks, ringBytes int) error {
	l := layout{n: nranks, ring: ringBytes}
	if err := l.check(); err != nil {
		return fmt.Errorf("shm: create %s: %v", path, err)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &fs.PathError{Op: "shm: create", Path: path, Err: err}
	}
	defer unix.Close(fd)
	fail := func(op string, err error) error {
		unix.Unlink(path)
		return &fs.PathError{Op: "shm: create: " + op, Path: path, Err: err}
	}
	if err := unix.Fchmod(fd, 0o600); err != nil { // whatever the umask
		return fail("chmod", err)
	}
	if err := unix.Ftruncate(fd, int64(l.size())); err != nil {
		return fail("size", err)
	}
	mem, err := unix.Mmap(fd, 0, lineSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("map", err)
	}
	binary.LittleEndian.PutUint32(mem[hdrVersion:], version)
	binary.LittleEndian.PutUint32(mem[hdrRanks:], uint32(nranks))
	binary.LittleEndian.PutUint32(mem[hdrRing:], uint32(ringBytes))
	binary.LittleEndian.PutUint64(mem[hdrSize:], uint64(l.size()))
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&mem[hdrMagic])), magic)
	if err := unix.Munmap(mem); err != nil {
		return fail("unmap", err)
	}
	return nil
}

// Remove unlinks the segment at path; one already gone is no error. Ranks
// that have it mapped keep their mapping.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("shm: %w", err)
	}
	return nil
}

// Sweep removes the segments in dir (Dir if empty) that this user's
// creators left behind: those whose creator's pid (in the name) no longer
// runs, as after a SIGKILL. It returns the paths it removed. A host's
// launcher or agent runs it at start. The pid is read in this process's
// pid namespace: hosts that share a /dev/shm must share it too.
func Sweep(dir string) ([]string, error) {
	if dir == "" {
		dir = Dir
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("shm: sweep: %w", err)
	}
	var gone []string
	for _, ent := range ents {
		name := ent.Name()
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok || !ent.Type().IsRegular() {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		info, err := ent.Info()
		if err != nil {
			continue
		}
		if st, ok := info.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
			continue
		}
		if alive(pid) {
			continue
		}
		p := filepath.Join(dir, name)
		if os.Remove(p) == nil {
			gone = append(gone, p)
		}
	}
	return gone, nil
}

// mapSegment opens and maps the segment at path and checks its header
// against the file: the segment is untrusted input. It maps the channel
// area apart as well (see coll.go).
func mapSegment(path string) ([]byte, *area, layout, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, layout{}, &fs.PathError{Op: "shm: open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, nil, layout{}, &fs.PathError{Op: "shm: open", Path: path, Err: err}
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("shm: open %s: %s", path, fmt.Sprintf(format, args...))
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, nil, layout{}, bad("not a regular file")
	case int(st.Uid) != os.Getuid():
		return nil, nil, layout{}, bad("owned by uid %d, not this user (%d)", st.Uid, os.Getuid())
	case st.Mode&0o077 != 0:
		return nil, nil, layout{}, bad("mode %#o lets other users in; a segment must be 0600", st.Mode&0o777)
	case st.Size < lineSize:
		return nil, nil, layout{}, bad("%d bytes, shorter than a header", st.Size)
	case st.Size > int64(MaxRanks)*MaxRanks*(MaxRingBytes+ctlSize):
		return nil, nil, layout{}, bad("%d bytes, larger than any segment", st.Size)
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, layout{}, &fs.PathError{Op: "shm: map", Path: path, Err: err}
	}
	l, err := readHeader(mem)
	if err != nil {
		unix.Munmap(mem)
		return nil, nil, layout{}, bad("%v", err)
	}
	a, err := mapArea(fd, l)
	if err != nil {
		unix.Munmap(mem)
		return nil, nil, layout{}, &fs.PathError{Op: "shm: map", Path: path, Err: err}
	}
	return mem, a, l, nil
}

func readHeader(mem []byte) (layout, error) {
	if m := atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[hdrMagic]))); m != magic {
		return layout{}, fmt.Errorf("not a gorun segment (magic %#x)", m)
	}
	if v := binary.LittleEndian.Uint32(mem[hdrVersion:]); v != version {
		return layout{}, fmt.Errorf("segment version %d; this build reads %d", v, version)
	}
	l := layout{n: int(binary.LittleEndian.Uint32(mem[hdrRanks:])), ring: int(binary.LittleEndian.Uint32(mem[hdrRing:]))}
	if err := l.check(); err != nil {
		return layout{}, err
	}
	if sz := binary.LittleEndian.Uint64(mem[hdrSize:]); sz != uint64(l.size()) || sz != uint64(len(mem)) {
		return layout{}, fmt.Errorf("the header says %d bytes; %d ranks with %d-byte rings take %d; the file has %d", sz, l.n, l.ring, l.size(), len(mem))
	}
	return l, nil
}

// alive says whether process pid runs (or is not ours to ask: EPERM). A
// zombie does not: a keeper sweeps as soon as its gorun or agent died,
// before that one's parent has reaped it.
func alive(pid int) bool {
	if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) state ...: comm may hold spaces and parens.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}
