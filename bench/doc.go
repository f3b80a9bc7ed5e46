// Package bench holds Leash's performance benchmarks. Each benchmark
// measures a baseline in the same run and reports its result as a ratio to
// it (b.ReportMetric), so numbers from different machines compare. Nothing
// here asserts a time: run them with make bench.
package bench
