# Levee — DOTS server and client. `make help` lists the targets.
GO       ?= go
BIN      := bin
DEV_DIR  ?= var/dev
FUZZTIME ?= 30s
PKGS     := ./...

.PHONY: help build run test bench fuzz lint
.DEFAULT_GOAL := help

help: ## show this help
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build dotsd, dotsctl and dotsload into bin/
	$(GO) build -o $(BIN)/ ./cmd/...

run: build ## run dotsd on a development PKI and configuration in var/dev
	$(BIN)/dotsd dev --dir $(DEV_DIR)

test: ## vet, check formatting and run every test with the race detector
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

bench: build ## Go benchmarks, the scrubber's drop rate, then the load tool against a real dotsd (prints figures beside targets)
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(BIN)/scrubbench
	$(BIN)/dotsload --dotsd $(BIN)/dotsd --phases 12345678
	@if [ "$$(id -u)" = 0 ]; then $(BIN)/dotslab bench loss --bin $(BIN); \
	  else echo "loss lab skipped: it builds network namespaces, which needs root (sudo make bench)"; fi

.PHONY: lab
lab: build ## run the scrubbing lab step by step (root: network namespaces; LAB_FLAGS=--keep leaves it up)
	$(BIN)/dotslab run scrubbing --bin $(BIN) $(LAB_FLAGS)

fuzz: ## run every fuzz target for FUZZTIME (default 30s) each
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

lint: ## gofmt, go vet, and golangci-lint when installed
	@test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) vet $(PKGS)
	@if command -v golangci-lint >/dev/null; then golangci-lint run; else echo "golangci-lint not installed: skipped"; fi
