//go:build !linux

package launcher

import "errors"

// newSegment: shared memory between ranks is Linux-only; elsewhere every
// frame goes through the bus.
func newSegment(n int) (string, error) {
	return "", errors.New("shared memory between ranks needs Linux")
}

func removeSegment(path string) {}

func sweepSegments() {}
