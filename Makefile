# tapedeck — see README.md.
GO        ?= go
BIN       := $(CURDIR)/.bin
VERSITYGW := $(BIN)/versitygw
NATS_SERVER := $(BIN)/nats-server
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FUZZTIME  ?= 20s

.PHONY: all deps deps-demo build test demo bench bench-instructions soak lint fuzz clean

all: build

CHROMIUM    := /usr/lib/chromium/chromium
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Packages whose tests run under the race detector: everything. (capture,
# postcall, storage and cmd/tapedeck are where the concurrency is; the others
# cost little more under -race.)
RACE      ?= -race

## deps-demo: what the demo needs: FFmpeg from Debian's packages
deps-demo:
	@{ command -v ffmpeg && command -v ffprobe; } >/dev/null 2>&1 || { \
		echo "installing ffmpeg from Debian's packages"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends ffmpeg; }

## deps: what the tests need besides: Chromium, coturn (TURN) and xmllint from Debian's packages, versitygw
## and nats-server with go install, and the WHIP clients written elsewhere from npm (examples/browser/interop)
INTEROP := examples/browser/interop
deps: deps-demo $(NATS_SERVER)
	@{ test -x $(CHROMIUM) && command -v turnserver && command -v xmllint; } >/dev/null 2>&1 || { \
		echo "installing chromium, coturn and libxml2-utils from Debian's packages"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium coturn libxml2-utils; }
	@test -x $(VERSITYGW) || { echo "installing versitygw (S3-compatible test server) into .bin"; \
		GOBIN=$(BIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@v1.8.0; }
	@cmp -s $(INTEROP)/package-lock.json $(INTEROP)/node_modules/.installed-lock.json || { \
		echo "installing the npm WHIP clients into $(INTEROP)/node_modules"; \
		npm ci --prefix $(INTEROP) --no-audit --no-fund --loglevel=error && \
		cp $(INTEROP)/package-lock.json $(INTEROP)/node_modules/.installed-lock.json; }

$(NATS_SERVER):
	@echo "installing nats-server (an external JetStream for the cluster tests and bench) into .bin"
	GOBIN=$(BIN) $(GO) install github.com/nats-io/nats-server/v2@v2.15.2

## build: the tapedeck binary in .bin
build:
	$(GO) build -o $(BIN)/tapedeck ./cmd/tapedeck

## test: every test under the race detector, with real FFmpeg, real WebRTC over loopback, a real S3
## server and a real Chromium. The browser tests run after the rest, alone: they measure Chromium's own
## A/V timing, which a loaded machine (renders of other packages' tests beside them) disturbs.
test: deps
	$(GO) test $(RACE) -count=1 -timeout 20m $$($(GO) list ./... | grep -v /examples/browser)
	$(GO) test $(RACE) -count=1 -timeout 20m ./examples/browser

## demo: a three-participant call captured into ./demo
## (FFmpeg installs while the binary compiles; the compile, about two minutes on a fresh machine, is the longer)
demo:
	@$(MAKE) --no-print-directory deps-demo & deps=$$!; \
		$(GO) build -o $(BIN)/tapedeck ./cmd/tapedeck; built=$$?; \
		wait $$deps || exit 1; exit $$built
	$(BIN)/tapedeck demo --data demo

## bench: capture path figures (per packet, and loopback load runs without and with the render during the
## call), the render of a 4-participant 5-minute 720p30 call against a hand-written xstack+amix FFmpeg
## command, what the sources' keyframes cost a render in 10-second windows, and how long after calls of 2, 10
## and 30 minutes the composite is stored with the render during the call and without, and what storing and
## taking a 30-minute call's windows adds in a cluster (about an hour and a half on 2 CPUs); prints a report
bench: deps-demo $(NATS_SERVER)
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./capture/... ./timeline/...
	$(GO) build -o $(BIN)/tapedeck ./cmd/tapedeck && $(BIN)/tapedeck loadtest --publishers 20 --duration 30s --log-level warn
	$(BIN)/tapedeck loadtest --publishers 20 --duration 30s --progressive --log-level warn
	$(GO) test -run '^$$' -bench Render -benchtime 1x -count=1 -timeout 60m ./render
	$(GO) test -run '^$$' -bench MeasureWAV -count=1 ./render
	$(GO) test -run '^$$' -bench Keyframes -benchtime 1x -count=1 -timeout 30m ./render
	$(GO) test -run '^$$' -bench Availability -benchtime 1x -count=1 -timeout 150m ./render
	$(GO) test -run '^$$' -bench . -benchtime 10x -count=1 ./cluster
	$(GO) test -run '^$$' -bench WindowsTravel -benchtime 1x -count=1 ./postcall

## bench-instructions: the render benchmark's call counted in instructions (valgrind's callgrind) rather than CPU
## time, which varies by up to 30 % from run to run on a shared VM: tapedeck against the hand-written commands,
## by library, and its windows against one job (a 60-second call; about an hour on 2 CPUs). Valgrind and a C
## compiler from Debian's packages. TAPEDECK_BENCH_JOINS=0s: everyone from the start, the same picture;
## TAPEDECK_BENCH_ARMS=3,6: only tapedeck and the hand-written command making the same picture and sound
bench-instructions: deps-demo
	@{ command -v valgrind && command -v cc; } >/dev/null 2>&1 || { \
		echo "installing valgrind and gcc from Debian's packages"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends valgrind gcc libc6-dev; }
	$(GO) test -run '^$$' -bench Instructions -benchtime 1x -count=1 -timeout 180m ./render

## soak: 10 publishers for ten minutes; memory, goroutines, loss and CPU over time
soak: deps-demo
	$(GO) build -o $(BIN)/tapedeck ./cmd/tapedeck && $(BIN)/tapedeck loadtest --publishers 10 --bitrate 1500000 --duration 10m --report-every 30s --log-level warn

## lint: gofmt, go vet, staticcheck (pinned), go.mod and go.sum tidy
lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	@test -x $(BIN)/staticcheck || GOBIN=$(BIN) $(GO) install $(STATICCHECK)
	$(BIN)/staticcheck ./...
	$(GO) mod tidy -diff

## fuzz: run every fuzz target of the repository (found by name) for FUZZTIME
fuzz:
	@grep -rn --include='*_test.go' '^func Fuzz' . | \
		sed -E 's#^\./(.*)/[^/]*_test\.go:[0-9]+:func (Fuzz[A-Za-z0-9_]*)\(.*#\1 \2#' | sort -u | \
		while read dir name; do \
			echo "fuzz $$name ./$$dir ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$dir || exit 1; \
		done

clean:
	rm -rf $(BIN) demo store
