// Package warmup, imported for its side effect by gorun's command, makes
// at start, in the background, what crypto/ed25519 computes once a process
// at its first key and its first verification: tables of the base point's
// multiples, about 2.5 ms of CPU together. gorun needs both within
// milliseconds of its start (the ranks' keys and its server's identity
// before any rank can start, each rank's signature as it connects); made
// here, while the rest of the program initializes and parses its
// arguments on the main goroutine, they are ready, or nearly, when asked
// for.
//
//	import _ "github.com/gorun-hpc/gorun/internal/warmup"
//
// A rank never imports it: it makes one signature, with no table
// (internal/natsauth). A keeper (gorun run as KeeperArg, see the
// launcher's keeper) signs nothing either: it skips them.
package warmup

import (
	"crypto/ed25519"
	"os"
)

// KeeperArg is the argument that makes gorun a job's keeper (the
// launcher's keeperArg), here so that this package's init, which runs
// before the launcher's takes the process over, knows it.
const KeeperArg = "__gorun_keeper"

func init() {
	if len(os.Args) == 4 && os.Args[1] == KeeperArg {
		return // 64 keepers of a 64-host job made them for nothing: 160 ms of CPU
	}
	go func() {
		key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
		msg := []byte("gorun")
		ed25519.Verify(key.Public().(ed25519.PublicKey), msg, ed25519.Sign(key, msg))
	}()
}
