// Package bench holds Leash's performance benchmarks. Each benchmark
// measures a baseline in the same run and reports its result as a ratio to
// it (b.ReportMetric), so numbers from different machines compare. Nothing
// here asserts a time: run them with make bench. README.md says what each
// benchmark measures, how to read its ratio, and what it measured.
//
// The postgres sub-benchmarks take a throwaway database from
// internal/testpg; without PostgreSQL they skip, except in CI.
package bench
