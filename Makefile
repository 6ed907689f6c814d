# Everyday targets. `make run` and `make test` are the two a newcomer needs.
GO      ?= go
BIN     := bin
export GOTRACEBACK := all

.PHONY: all build install run test test-short test-deps bench lint check-deps clean

all: build

build:
	$(GO) build -o $(BIN)/gorun ./cmd/gorun

install:
	$(GO) install ./cmd/gorun

# Runs an example job on the embedded NATS server and checks its answer.
run: build
	./$(BIN)/gorun -n 4 ./examples/sum

test-deps:
	@bash scripts/test-deps.sh

# The whole suite, race detector on, multi-process and multi-host tests included.
test: test-deps check-deps
	$(GO) test -race -timeout=20m ./...

# A quick loop: skips the multi-process and multi-host tests.
test-short:
	$(GO) test -short -race ./...

bench: build
	$(GO) test -run='^$$' -bench=. -benchmem -timeout=30m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# collectives and pool must use only mpi's public API: nothing they import
# themselves may be under mpi/internal (Go's internal rule forbids it too;
# this says so clearly).
check-deps:
	@for p in collectives pool; do \
		if $(GO) list -e -f '{{join .Imports "\n"}}{{"\n"}}{{join .TestImports "\n"}}' ./$$p/... | grep -q '/mpi/internal'; then \
			echo "$$p imports mpi/internal"; exit 1; fi; \
	done

clean:
	rm -rf $(BIN)
