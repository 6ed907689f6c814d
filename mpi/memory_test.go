package mpi_test

import "flag"

var memorySeed = flag.Uint64("memory.seed", 0, "the seed of the in-memory network's faults (0: from the clock)")
