package mpi

// WithReadHook replaces the single-copy read (process_vm_readv) for a test:
// to count copies, or to refuse or fail them.
func WithReadHook(f func(pid int, addr uint64, buf []byte) error) Option {
	return func(o *Options) error {
		o.readHook = f
		return nil
	}
}

// ReadRemote is the real single-copy read.
var ReadRemote = readRemote
