package launcher

import (
	"bytes"
	"io"
	"os"
	"sync"
	"time"
)

// waitClosed waits until every one of chans is closed, at most d; it
// says whether they all were.
func waitClosed(d time.Duration, chans ...chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for _, c := range chans {
		select {
		case <-c:
		case <-t.C:
			return false
		}
	}
	return true
}

// closeNotifier closes done when the stream is closed (its consumer reached
// EOF, or gave up on it).
type closeNotifier struct {
	io.ReadCloser
	done chan struct{}
	once sync.Once
}

func (c *closeNotifier) Close() error {
	err := c.ReadCloser.Close()
	c.once.Do(func() { close(c.done) })
	return err
}

// isCharDevice says whether f is a terminal or other character device.
func isCharDevice(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// closeAll closes files, on a path that gives up on them.
func closeAll(files ...*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// tailBuffer keeps the first max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := t.max - t.b.Len(); room > 0 {
		t.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b.String()
}

// isDevNull says whether r is the null device (gorun's stdin in a batch
// job): a rank then reads EOF without being fed.
func isDevNull(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err == nil && os.SameFile(fi, null)
}
