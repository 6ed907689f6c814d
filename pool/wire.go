package pool

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// Messages. Down (rank 0 to a worker, on the call's down tag):
//
//	msgChunk start count <[]In>   tasks start .. start+count-1
//	msgStop                       no more tasks for you
//	msgAbort <failure>            the call failed; stop now
//
// Up (a worker to rank 0, on the up tag):
//
//	msgChunk start count <[]Out>  the results of a chunk, in the order handed out
//	msgAbort <failure>            this rank failed
//
// start and count are uvarints; <[]T> is mpi.AppendValue's wire form;
// <failure> is: one byte (1: a task's error, 0: anything else), the task
// index and the rank as uvarints, then the error's text.
const (
	msgChunk byte = 1
	msgStop  byte = 2
	msgAbort byte = 3
)

// span is a chunk of tasks: indices start .. start+count-1.
type span struct{ start, count int }

// appendChunk returns a chunk message: header, then the values.
func appendChunk[T any](kind byte, s span, vals []T) ([]byte, error) {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+16)
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(s.start))
	b = binary.AppendUvarint(b, uint64(s.count))
	return mpi.AppendValue(b, vals)
}

// parseChunk reads a chunk message after its kind byte.
func parseChunk[T any](b []byte) (span, []T, error) {
	start, n := binary.Uvarint(b)
	if n <= 0 {
		return span{}, nil, errors.New("bad chunk header")
	}
	count, m := binary.Uvarint(b[n:])
	if m <= 0 || start > 1<<62 || count > 1<<62 {
		return span{}, nil, errors.New("bad chunk header")
	}
	vals, err := mpi.DecodeValue[[]T](b[n+m:])
	if err != nil {
		return span{}, nil, err
	}
	if len(vals) != int(count) {
		return span{}, nil, fmt.Errorf("a chunk of %d values, its header says %d", len(vals), count)
	}
	return span{int(start), int(count)}, vals, nil
}

// appendFailure returns an abort message for err, which happened on rank.
func appendFailure(err error, rank int) []byte {
	b := []byte{msgAbort, 0}
	var te *TaskError
	text := err.Error()
	index := 0
	if errors.As(err, &te) {
		b[1], index, rank, text = 1, te.Index, te.Rank, te.Err.Error()
	}
	b = binary.AppendUvarint(b, uint64(index))
	b = binary.AppendUvarint(b, uint64(rank))
	return append(b, text...)
}

// parseFailure reads an abort message after its kind byte, and returns the
// error a rank returns for it.
func parseFailure(b []byte) error {
	if len(b) < 1 {
		return fmt.Errorf("%w: a malformed abort message", ErrStopped)
	}
	task := b[0] == 1
	index, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return fmt.Errorf("%w: a malformed abort message", ErrStopped)
	}
	rank, m := binary.Uvarint(b[1+n:])
	if m <= 0 {
		return fmt.Errorf("%w: a malformed abort message", ErrStopped)
	}
	text := string(b[1+n+m:])
	if task {
		return &TaskError{Index: int(index), Rank: int(rank), Err: errors.New(text)}
	}
	return fmt.Errorf("%w: rank %d: %s", ErrStopped, rank, text)
}
