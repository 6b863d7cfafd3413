# Shorthands for the commands in README.md; .ci/run is the source of truth for CI.
.PHONY: run test ci bench bench-quick bench-stages lint vet fmt-check

run: ## run the service on the embedded defaults (API :8080, admin :9090)
	go run ./cmd/service

test: ## the test suite, as CI runs it
	go test -race ./...
	cd deploy/kubernetes && go test -race ./...

ci: ## everything CI checks
	.ci/run

bench: ## the throughput benchmark: bare gin, go-zero and meshkit built and driven by wrk, printed as docs/BENCHMARKS.md's table and plot (about 5 minutes; measure on a quiet machine; needs wrk)
	scripts/bench -svg docs/bench-throughput.svg

bench-quick: ## the throughput benchmark for 1s, one round: checks that it runs, the figures mean little
	scripts/bench -quick

bench-stages: ## the in-process micro-benchmarks of single stages, each with its peer (several minutes)
	scripts/bench -stages

lint: vet fmt-check ## vet, gofmt and golangci-lint (the version .ci/golangci-lint pins), as CI runs them
	.ci/golangci-lint run ./...
	cd bench && ../.ci/golangci-lint run ./...
	cd bench/gozero && ../../.ci/golangci-lint run ./...
	cd deploy/kubernetes && ../../.ci/golangci-lint run ./...

vet:
	go vet ./...
	cd deploy/kubernetes && go vet ./...

fmt-check: ## fails listing the files gofmt would change
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then echo "not gofmt-formatted:"; echo "$$files"; exit 1; fi
