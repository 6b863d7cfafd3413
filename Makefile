# Shorthands for the commands in README.md; .ci/run is the source of truth for CI.
.PHONY: run test ci bench bench-quick lint vet fmt-check

run: ## run the service on the embedded defaults (API :8080, admin :9090)
	go run ./cmd/service

test: ## the test suite, as CI runs it
	go test -race ./...
	cd deploy/kubernetes && go test -race ./...

ci: ## everything CI checks
	.ci/run

bench: ## every benchmark with its peer, printed as docs/BENCHMARKS.md's tables (several minutes; measure on a quiet machine)
	scripts/bench

bench-quick: ## every benchmark once (-benchtime 1x): checks that they run, the figures mean nothing
	scripts/bench -quick

lint: vet fmt-check ## vet, gofmt and golangci-lint (the version .ci/golangci-lint pins), as CI runs them
	.ci/golangci-lint run ./...
	cd bench && ../.ci/golangci-lint run ./...
	cd deploy/kubernetes && ../../.ci/golangci-lint run ./...

vet:
	go vet ./...
	cd deploy/kubernetes && go vet ./...

fmt-check: ## fails listing the files gofmt would change
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then echo "not gofmt-formatted:"; echo "$$files"; exit 1; fi
