// Package bench measures meshkit against the naive stack that issue 5
// describes, in its own module so that otelgin (and the gin dependencies it
// wants) stay out of meshkit's go.mod. The module replaces
// github.com/meshkit/meshkit with the working tree above it, so it measures
// the code beside it.
//
// BenchmarkPeersLoopback calls GET /apptest/hello (app/apptest/hellobench's
// route, the example module's GET /v1/hello alike) over loopback HTTP/1.1 with
// keep-alive from GOMAXPROCS goroutines on three peers in the same run,
// alternately (the order turns by one peer a round): bare gin, the naive
// stack (NewNaive), and the default meshkit app, started as
// app.BenchmarkHelloLoopback starts it. Its sub-benchmarks sampled=100% and
// sampled=1% give the app and the naive stack the same sampler, and both
// export every sampled span in batches to a discarding exporter. Reported
// per peer: median ns/op, allocs/op and req/s over the rounds; and the
// medians of the rounds' req/s ratios naive/bare-rps, meshkit/bare-rps and
// meshkit/naive-rps. Run it with
//
//	cd bench && go test -run '^$' -bench . -benchtime 2s -count 2
//
// (-benchtime 1x is a quick smoke run). docs/BENCHMARKS.md has the figures.
package bench
