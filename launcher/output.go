package launcher

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// output forwards the ranks' stdout and stderr to gorun's, one whole line at
// a time: each line is assembled in full (up to MaxLine) and written with a
// single Write under one mutex shared by both streams, so two ranks never mix
// inside a line even when stdout and stderr are the same file. A longer
// line is forwarded in pieces of MaxLine bytes, each ended with a newline,
// and gorun says so once per stream: memory stays bounded whatever a rank
// writes.
type output struct {
	mu             sync.Mutex // held for every Write to stdout or stderr
	stdout, stderr io.Writer
	tag            bool

	wg      sync.WaitGroup
	rmu     sync.Mutex
	readers map[io.Closer]struct{}  // streams not yet at EOF
	panics  map[int]string          // rank -> the first Go panic line it printed on stderr
	last    map[int]string          // rank -> its last non-empty stderr line
	ranks   map[int]*sync.WaitGroup // rank -> its streams still being forwarded
}

// maxWords bounds a line kept for lastWords.
const maxWords = 240

// MaxLine is the longest line gorun forwards whole: 1 MiB.
const MaxLine = 1 << 20

func newOutput(stdout, stderr io.Writer, tag bool) *output {
	return &output{
		stdout:  stdout,
		stderr:  stderr,
		tag:     tag,
		readers: make(map[io.Closer]struct{}),
		panics:  make(map[int]string),
		last:    make(map[int]string),
		ranks:   make(map[int]*sync.WaitGroup),
	}
}

// forward copies r, one of rank's output streams, to gorun's stdout (or
// stderr if toStderr) until EOF, then closes r. It returns at once; wait
// waits for every forwarded stream.
func (o *output) forward(rank int, r io.ReadCloser, toStderr bool) {
	o.rmu.Lock()
	o.readers[r] = struct{}{}
	rw := o.ranks[rank]
	if rw == nil {
		rw = new(sync.WaitGroup)
		o.ranks[rank] = rw
	}
	rw.Add(1)
	o.rmu.Unlock()
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		defer rw.Done()
		o.copyLines(rank, r, toStderr)
		o.rmu.Lock()
		delete(o.readers, r)
		o.rmu.Unlock()
		r.Close()
	}()
}

// copyLines does forward's work.
func (o *output) copyLines(rank int, r io.Reader, toStderr bool) {
	dst := o.stdout
	if toStderr {
		dst = o.stderr
	}
	var prefix []byte
	if o.tag {
		prefix = []byte("[" + strconv.Itoa(rank) + "] ")
	}
	br := bufio.NewReaderSize(r, 64<<10)
	line := append([]byte(nil), prefix...)
	warned := false
	for {
		chunk, err := br.ReadSlice('\n')
		n := len(chunk) // the line's bytes, without its newline
		if err == nil {
			n--
		}
		if len(line)-len(prefix)+n > MaxLine {
			// A line too long to hold: out goes a piece of MaxLine bytes.
			k := MaxLine - (len(line) - len(prefix))
			line = append(line, chunk[:k]...)
			line = append(line, '\n')
			o.mu.Lock()
			dst.Write(line)
			o.mu.Unlock()
			if !warned {
				warned = true
				stream := "stdout"
				if toStderr {
					stream = "stderr"
				}
				o.printf("rank %d wrote a line longer than %d MiB on its %s: forwarded in pieces of %d MiB, each ended by a newline", rank, MaxLine>>20, stream, MaxLine>>20)
			}
			line = append(line[:len(prefix)], chunk[k:]...)
			if err == bufio.ErrBufferFull {
				continue
			}
		} else {
			line = append(line, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue // a long line: keep assembling it
		}
		if err != nil && len(line) == len(prefix) {
			return // EOF (or a read error) between lines
		}
		if err != nil {
			line = append(line, '\n') // a last line without newline
		}
		if toStderr {
			o.note(rank, line[len(prefix):])
		}
		o.mu.Lock()
		if !o.tag && bytes.HasPrefix(line, gorunPrefix) {
			// A rank's line that would read as gorun's own gets the
			// rank's tag: gorun's lines cannot be forged.
			dst.Write([]byte("[" + strconv.Itoa(rank) + "] "))
		}
		dst.Write(line) // nowhere to report a failed write to gorun's own output
		o.mu.Unlock()
		if err != nil {
			return
		}
		if cap(line) > 256<<10 {
			line = append([]byte(nil), prefix...) // do not keep one huge line's memory
		} else {
			line = line[:len(prefix)]
		}
	}
}

// gorunPrefix starts each of gorun's own lines on its stderr. Without
// --tag-output, a rank's line that starts so is forwarded with the rank's
// tag ("[3] gorun: ..."), so that only gorun's lines start with it.
var gorunPrefix = []byte("gorun:")

// note records what a line of rank's stderr says about how it ends: the
// first panic line, and the last line that is not blank.
func (o *output) note(rank int, line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	if len(line) > maxWords {
		line = append(line[:maxWords:maxWords], "..."...)
	}
	o.rmu.Lock()
	defer o.rmu.Unlock()
	if isPanicLine(line) {
		if _, ok := o.panics[rank]; !ok {
			o.panics[rank] = string(line)
		}
	}
	// Not the goroutine dump that follows a panic: its message is the
	// line to show.
	if _, ok := o.panics[rank]; !ok {
		o.last[rank] = string(line)
	}
}

// waitRank waits, at most d, until rank's streams have been forwarded to
// their end: a remote rank's exit can come while its last lines are on
// their way to gorun's output, and gorun's verdict quotes them.
func (o *output) waitRank(rank int, d time.Duration) {
	o.rmu.Lock()
	rw := o.ranks[rank]
	o.rmu.Unlock()
	if rw == nil {
		return
	}
	done := make(chan struct{})
	go func() { rw.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// lastWords is what rank said last on its stderr, for gorun's verdict on
// it: a panic's message (the line that starts the panic report), else its
// last line that is not blank, without the log package's date and time;
// "" if it printed nothing.
func (o *output) lastWords(rank int) string {
	o.rmu.Lock()
	defer o.rmu.Unlock()
	if p, ok := o.panics[rank]; ok {
		return strings.TrimPrefix(p, "panic: ") // "after a panic: " says it
	}
	return logStamp.ReplaceAllString(o.last[rank], "")
}

// logStamp is the log package's standard prefix: a date and a time.
var logStamp = regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(\.\d+)? `)

// isPanicLine says whether a line of stderr starts a Go panic or fatal
// runtime error report.
func isPanicLine(line []byte) bool {
	return bytes.HasPrefix(line, []byte("panic: ")) || bytes.HasPrefix(line, []byte("fatal error: "))
}

// panicked says whether rank printed a Go panic on its stderr.
func (o *output) panicked(rank int) bool {
	o.rmu.Lock()
	defer o.rmu.Unlock()
	_, ok := o.panics[rank]
	return ok
}

// wait waits until every forwarded stream reached EOF and was written out,
// at most timeout; then it closes the streams still open (a rank's child
// holding a pipe open), and waits for their goroutines to finish. It
// reports whether every stream reached EOF by itself.
func (o *output) wait(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { o.wg.Wait(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
	}
	o.rmu.Lock()
	for r := range o.readers {
		r.Close()
	}
	o.rmu.Unlock()
	<-done
	return false
}

// printf writes one line of gorun's own to stderr, prefixed "gorun: ", under
// the output lock.
// printLines prints lines as printf would, in one write, so that no other
// line comes between them.
func (o *output) printLines(lines []string) {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("gorun: " + l + "\n")
	}
	o.mu.Lock()
	io.WriteString(o.stderr, b.String())
	o.mu.Unlock()
}

func (o *output) printf(format string, args ...any) {
	msg := "gorun: " + fmt.Sprintf(format, args...)
	if msg[len(msg)-1] != '\n' {
		msg += "\n"
	}
	o.mu.Lock()
	io.WriteString(o.stderr, msg)
	o.mu.Unlock()
}
