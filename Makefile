# tapedeck — see README.md.
GO        ?= go
BIN       := $(CURDIR)/.bin
VERSITYGW := $(BIN)/versitygw
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FUZZTIME  ?= 20s

.PHONY: all deps build test demo bench soak lint fuzz clean

all: build

CHROMIUM  := /usr/lib/chromium/chromium

## deps: install what the tests and the demo need (FFmpeg and Chromium from Debian, versitygw with go install)
deps:
	@{ command -v ffmpeg && command -v ffprobe && test -x $(CHROMIUM); } >/dev/null 2>&1 || { \
		echo "installing ffmpeg and chromium from Debian's packages"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq ffmpeg chromium; }
	@test -x $(VERSITYGW) || { echo "installing versitygw (S3-compatible test server) into .bin"; \
		GOBIN=$(BIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@v1.8.0; }

## build: the tapedeck binary in .bin
build:
	$(GO) build -o $(BIN)/tapedeck ./cmd/tapedeck

## test: every test, with real FFmpeg, real WebRTC over loopback and a real S3 server
test: deps
	$(GO) test -count=1 -timeout 15m ./...

## demo: a three-participant call captured into ./demo
demo: deps
	$(GO) run ./cmd/tapedeck demo --data demo

## bench: capture path figures (per packet, and a loopback load run), then the render of a 4-participant
## 5-minute 720p30 call against a hand-written xstack+amix FFmpeg command; prints a report
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./capture/... ./timeline/...
	$(GO) build -o $(BIN)/tapedeck ./cmd/tapedeck && $(BIN)/tapedeck loadtest --publishers 20 --duration 30s --log-level warn
	$(GO) test -run '^$$' -bench Render -benchtime 1x -count=1 -timeout 60m ./render

## soak: 10 publishers for ten minutes; memory, goroutines, loss and CPU over time
soak: deps
	$(GO) build -o $(BIN)/tapedeck ./cmd/tapedeck && $(BIN)/tapedeck loadtest --publishers 10 --bitrate 1500000 --duration 10m --report-every 30s --log-level warn

## lint: gofmt, go vet, staticcheck
lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	@command -v staticcheck >/dev/null 2>&1 || GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	PATH=$(BIN):$$PATH staticcheck ./...

## fuzz: run each fuzz target for FUZZTIME
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzRTPPath -fuzztime $(FUZZTIME) ./capture
	$(GO) test -run '^$$' -fuzz FuzzJournal -fuzztime $(FUZZTIME) ./capture
	$(GO) test -run '^$$' -fuzz FuzzScan -fuzztime $(FUZZTIME) ./capture/mkv
	$(GO) test -run '^$$' -fuzz FuzzWriter -fuzztime $(FUZZTIME) ./capture/mkv
	$(GO) test -run '^$$' -fuzz FuzzNewSync -fuzztime $(FUZZTIME) ./timeline
	$(GO) test -run '^$$' -fuzz FuzzParseEdits -fuzztime $(FUZZTIME) ./timeline
	$(GO) test -run '^$$' -fuzz FuzzParseCaptions -fuzztime $(FUZZTIME) ./timeline

clean:
	rm -rf $(BIN) demo store
