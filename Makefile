# Shorthands for the commands in README.md; .ci/run is the source of truth for CI.
.PHONY: run test ci bench lint vet fmt-check

run: ## run the service on the embedded defaults (API :8080, admin :9090)
	go run ./cmd/service

test: ## the test suite, as CI runs it
	go test -race ./...

ci: ## everything CI checks
	.ci/run

bench: ## all benchmarks with real iteration counts (figures: docs/BENCHMARKS.md)
	go test -run '^$$' -bench . -benchmem ./...

lint: vet fmt-check

vet:
	go vet ./...

fmt-check: ## fails listing the files gofmt would change
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then echo "not gofmt-formatted:"; echo "$$files"; exit 1; fi
