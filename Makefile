# Everyday targets. `make run` and `make test` are the two a newcomer needs.
GO      ?= go
BIN     := bin
export GOTRACEBACK := all

.PHONY: all build install run test test-short test-deps bench bench-deps lint check-deps check-go cross fuzz clean

all: build

# gorun is pure Go: built without cgo it is one static binary, which starts
# about 2 ms of CPU sooner than the dynamically linked one a cgo build makes
# (no dynamic loader, no libc set-up, no cgo thread creation).
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/gorun ./cmd/gorun

install:
	CGO_ENABLED=0 $(GO) install ./cmd/gorun

# Runs an example job on the embedded NATS server and checks its answer.
run: build
	./$(BIN)/gorun -n 4 ./examples/sum

test-deps:
	@bash scripts/test-deps.sh

# The whole suite, race detector on, multi-process and multi-host tests
# included. internal/testing/testprogress runs go test -json and prints each package
# as it finishes (a failure's output as go test prints it), then which groups
# of tests ran (unit, multi-process, multi-host/SSH, examples) and why any
# were skipped, and last "N passed, N failed".
# (Built, not go run, so that its exit status is not followed by go run's
# "exit status 1": the totals stay the last line.)
TESTPROGRESS := GO=$(GO) ./$(BIN)/testprogress

# -timeout bounds a package's tests: about 8 minutes for the longest
# (cmd/gorun, collectives) on 2 idle cores, over 20 with both cores busy
# with other work; a hung job fails sooner, at mpitest's 5-minute bound.
test: test-deps check-deps check-go fuzz $(BIN)/testprogress
	$(TESTPROGRESS) -race -timeout=60m ./...

# Every fuzz target for FUZZTIME each (5 s in make test; longer by hand:
# make fuzz FUZZTIME=10m). The bus is untrusted input: the targets feed
# random frames and start-up messages to mpi's handlers. A crasher found is
# written under the package's testdata/fuzz, where go test runs it again
# as a regression case.
FUZZTIME ?= 5s
FUZZ := mpi:FuzzInbox mpi:FuzzMulticast mpi:FuzzAbort mpi:FuzzHandshake mpi:FuzzParseToken mpi:FuzzWinRequest internal/shm:FuzzRingRead

fuzz:
	@for f in $(FUZZ); do \
		pkg=./$${f%%:*}; name=$${f#*:}; \
		echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		out=$$($(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || { echo "$$out"; exit 1; }; \
	done

# A quick loop: skips the multi-process and multi-host tests.
test-short: $(BIN)/testprogress
	$(TESTPROGRESS) -short -race ./...

.PHONY: $(BIN)/testprogress
$(BIN)/testprogress:
	@$(GO) build -o $@ ./internal/testing/testprogress

# The product builds, and the tests compile and vet, on macOS and the BSDs
# too (the Linux-only parts sit in _linux.go files, with fallbacks).
CROSS := darwin/arm64 freebsd/amd64

cross:
	@for p in $(CROSS); do \
		echo "GOOS=$${p%/*} GOARCH=$${p#*/}: go build ./... && go vet ./..."; \
		GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build ./... || exit 1; \
		GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet ./... || exit 1; \
	done

# Benchmarks that print figures, beside Open MPI's where it applies
# (bench-deps installs Debian's openmpi-bin and libopenmpi-dev: not needed by
# make test).
bench: build bench-deps
	$(GO) test -run='^$$' -bench=. -benchmem -timeout=30m ./...

bench-deps:
	@bash scripts/bench-deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# collectives, pool and shared must use only mpi's public API: nothing they import
# themselves may be under mpi/internal (Go's internal rule forbids it too;
# this says so clearly). gorun itself links nothing of mpi.
check-deps:
	@for p in collectives pool shared; do \
		if $(GO) list -e -f '{{join .Imports "\n"}}{{"\n"}}{{join .TestImports "\n"}}' ./$$p/... | grep -qE '/mpi/internal|gorun/internal/subject'; then \
			echo "$$p imports mpi/internal"; exit 1; fi; \
	done
	@if $(GO) list -deps ./launcher ./cmd/gorun | grep -q 'gorun/mpi'; then \
		echo "the launcher links package mpi: share what both need through internal/contract"; exit 1; fi
	@bad=$$($(GO) list -deps ./mpi ./collectives ./pool ./shared ./launcher ./cmd/gorun | grep -E 'gorun/(internal/testing/|mpi/mpitest)'); \
	if [ -n "$$bad" ]; then echo "a product package links test support: $$bad"; exit 1; fi
	@bad=$$($(GO) list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./launcher/placement | grep -v '/launcher/placement$$'); \
	if [ -n "$$bad" ]; then echo "launcher/placement uses the standard library only, not $$bad"; exit 1; fi
	@bad=$$($(GO) list -f '{{.ImportPath}}: {{join .Imports " "}}' ./... | grep 'nats-server' | grep -v '^[^:]*/internal/bus:' | cut -d: -f1); \
	if [ -n "$$bad" ]; then echo "only internal/bus starts NATS servers; these import nats-server: $$bad"; exit 1; fi

# go.mod requires the lowest Go that builds gorun, so that a user's module
# is not made to require a newer one: the highest its dependencies require,
# or an x.y.0 release (a language or library need comes with a minor
# release, never a patch release).
check-go:
	@have=$$($(GO) list -m -f '{{.GoVersion}}') || exit 1; \
	need=$$($(GO) list -m -f '{{if not .Main}}{{.GoVersion}}{{end}}' all | sort -V | tail -n 1); \
	case "$$have" in "$$need"|*.*.0) ;; *.*.*) \
		echo "go.mod: go $$have: require the lowest Go the code needs ($$need for the dependencies, or an x.y.0 release)"; exit 1;; esac

clean:
	rm -rf $(BIN)
