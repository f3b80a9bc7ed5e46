// Package docs holds Leash's Markdown documentation and a test that keeps
// it honest: commands and flags, metric names and relative links.
package docs
