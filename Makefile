# Shortcuts for the commands in the README. Nothing here is needed to build
# or test: plain go commands do the same.

GO ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: run test race bench lint ci build

run: ## run agentd with its embedded NATS server
	$(GO) run ./cmd/agentd

build: ## build the commands into bin/
	$(GO) build -o bin/ ./cmd/...

test: ## the tests, as in the README
	$(GO) test ./...

race: ## the tests under the race detector
	$(GO) test -race ./...

bench: ## the micro-benchmarks, with their anchors in the same run
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint: ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

ci: ## what CI runs
	bash .ci/run
