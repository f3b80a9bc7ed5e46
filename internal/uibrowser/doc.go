// Package uibrowser holds the real-browser tests of the gateway's UI:
// headless Chromium, driven over the DevTools protocol (chromedp), talks
// to nginx, which terminates TLS and proxies to the gateway under a path
// prefix with a ui-proxy client certificate, as in a deployment. The
// tests save full-page screenshots to $LEASH_TEST_ARTIFACTS, or to
// .artifacts/ui/ in the repository.
package uibrowser
