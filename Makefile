# Leash — build, test and run. Everything needs only Go; `make test` also
# uses openssl and curl when present (CI installs them and requires them).

GO          ?= go
BIN         ?= bin
DATA        ?= .leash-dev
# Count-based: a wall-clock -fuzztime trips a race in Go 1.26's fuzz
# coordinator (golang/go#75804) that fails runs with "context deadline
# exceeded" and no crasher.
FUZZTIME    ?= 10000x
BENCHTIME   ?= 3s
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X github.com/leashpki/leash/cli.version=$(VERSION)

# Fuzz targets: package:target, one go test -fuzz run each.
FUZZ_TARGETS := ./ca:FuzzParseCSR ./ca:FuzzParseCerts ./ca:FuzzEnrollToken ./cli:FuzzParseObjects ./protocol:FuzzParseTokenHints ./gateway/ui:FuzzValidPrefix

.PHONY: all build test unit fuzz run lint bench clean release

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/leash ./cmd/leash
	$(GO) build -trimpath -ldflags '-s -w -X main.version=$(VERSION)' -o $(BIN)/leash-runner ./cmd/leash-runner

## test: unit + integration tests with the race detector, then short fuzz runs.
test: unit fuzz

unit:
	$(GO) test -race -count=1 ./...

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

## run: the whole product locally (leash dev): a CA in $(DATA) (password
## generated once into $(DATA)/ca-password, mode 0600), the gateway in mTLS
## mode on the embedded SQLite store, one enrolled runner. Ctrl-C stops it.
run: build
	@mkdir -p $(DATA) && chmod 700 $(DATA)
	$(BIN)/leash --data-dir $(DATA) dev

lint:
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./runner/... ./cmd/leash-runner ./internal/winsvc
	GOOS=darwin $(GO) vet ./runner/... ./cmd/leash-runner ./cmd/leash
	$(GO) run $(STATICCHECK) ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bench:
	$(GO) test -run='^$$' -bench=. -benchtime=$(BENCHTIME) ./bench/...

clean:
	rm -rf $(BIN)

## release: every target's binaries, archives, .deb/.rpm, Homebrew formula,
## SHA256SUMS and its minisign signature into $(OUT). KEY is the minisign
## secret key (make one with: go run ./internal/release/cmd/release keygen);
## without KEY a throwaway key is generated into $(OUT) - not for publishing.
OUT ?= dist
KEY ?=
release:
	@if [ -z "$(KEY)" ]; then echo "release: no KEY given; signing with a throwaway key generated into $(OUT)"; fi
	$(GO) run ./internal/release/cmd/release build -version $(VERSION) -out $(OUT) $(if $(KEY),-key $(KEY),-throwaway-key)
