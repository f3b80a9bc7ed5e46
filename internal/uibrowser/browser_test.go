package uibrowser

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/internal/testenv"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
)

// TestBrowserUI drives headless Chromium through nginx to the gateway's
// UI: (a) a runner started during the test appears on the runners page
// without a reload; (b) a token is created, the snippet tabs switch and
// the copy button copies a snippet holding the token; (c) a runner's
// certificate revoked on the certificates page turns the runner offline
// live on the runners page, open in another tab.
func TestBrowserUI(t *testing.T) {
	chromium := findChromium(t)
	nginxBin := testenv.RequireTool(t, "nginx", "nginx")
	if _, err := os.Stat(nginxBin); err != nil {
		testenv.Missing(t, "nginx")
	}
	shots := artifactsDir(t)

	h := testharness.New(t, testharness.Options{Gateway: func(c *gateway.Config) {
		c.UI = gateway.UIConfig{Enabled: true, TrustedProxies: []string{"127.0.0.1/32"}}
		c.OfflineAfter = offlineAfter
	}})
	gw := h.StartGateway(t)
	h.StartRunner(t, gw, "web-1", testharness.RunnerOptions{Labels: map[string]string{"env": "test"}})
	waitStatus(t, h, "web-1", protocol.RunnerOnline)
	proxy := h.Client(t, ca.ProfileUIProxy, "nginx")
	certFile, keyFile := h.ServerCert(t, "127.0.0.1", "localhost")
	ngx := startNginx(t, nginxBin, gw, proxy, certFile, keyFile)
	base := "https://" + ngx.Addr + "/leash"

	ctx := startChromium(t, chromium, certFile)
	shot := func(ctx context.Context, name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(shots, name+".png")
		if err := os.WriteFile(path, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
	run := func(ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(c, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// (a) A runner appears live.
	run(ctx, "open the runners page",
		chromedp.EmulateViewport(1280, 800),
		chromedp.Navigate(base+"/runners"),
		chromedp.WaitVisible(`tr[data-id="web-1"]`),
		chromedp.WaitVisible(`body[data-live="connected"]`))
	shot(ctx, "01-runners")
	h.StartRunner(t, gw, "web-2", testharness.RunnerOptions{Labels: map[string]string{"env": "test", "role": "db"}})
	var status string
	run(ctx, "web-2 appears without a reload",
		chromedp.WaitVisible(`tr[data-id="web-2"] .badge.online`),
		into(&status, chromedp.Text(`#live-status`)))
	if !strings.Contains(status, "web-2") {
		t.Errorf("live status %q does not announce web-2", status)
	}
	shot(ctx, "02-runners-live")
	run(ctx, "phone width", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Reload(),
		chromedp.WaitVisible(`tr[data-id="web-2"]`))
	shot(ctx, "03-runners-phone")
	run(ctx, "desktop width", chromedp.ResetViewport(), chromedp.EmulateViewport(1280, 800))

	// Overview and runner detail render.
	run(ctx, "overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(`.cards`))
	shot(ctx, "04-overview")
	run(ctx, "runner detail", chromedp.Navigate(base+"/runners/web-1"), chromedp.WaitVisible(`#events`))
	shot(ctx, "05-runner-detail")

	// (b) A token, its snippet tabs and the copy button.
	var tokenValue, snippet, copied string
	run(ctx, "create a token",
		chromedp.Navigate(base+"/tokens"),
		chromedp.WaitVisible(`#token-name`),
		chromedp.SendKeys(`#token-name`, "db-7"),
		chromedp.Click(`form.stack button[type="submit"]`),
		chromedp.WaitVisible(`#token-value`),
		into(&tokenValue, chromedp.Text(`#token-value`)))
	if !strings.HasPrefix(tokenValue, "ey") {
		t.Fatalf("token %q", tokenValue)
	}
	run(ctx, "switch to the Kubernetes tab and copy",
		chromedp.Click(`#tab-systemd`),
		chromedp.WaitVisible(`#panel-systemd`),
		chromedp.Click(`#tab-k8s`),
		chromedp.WaitVisible(`#panel-k8s`),
		chromedp.WaitNotVisible(`#panel-compose`),
		into(&snippet, chromedp.TextContent(`#snippet-k8s`)),
		chromedp.Click(`#panel-k8s button.copy`),
		chromedp.WaitVisible(`#copy-status`),
		discard(chromedp.Poll[bool](`document.getElementById("copy-status").textContent.startsWith("Copied")`)),
		into(&copied, chromedp.Text(`#copy-status`)))
	if !strings.Contains(snippet, tokenValue) || !strings.Contains(snippet, "kind: StatefulSet") {
		t.Errorf("the Kubernetes snippet lacks the token or the StatefulSet:\n%s", snippet)
	}
	clip, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	switch {
	case err != nil:
		t.Errorf("reading the clipboard back failed (%v); the page said %q", err, copied)
	case clip != strings.TrimSpace(snippet) && clip != snippet:
		t.Errorf("clipboard holds %q, want the Kubernetes snippet", clip)
	}
	shot(ctx, "06-token-created")

	// Keyboard: the arrow keys move between the snippet tabs (wrapping),
	// and the first Tab on a page reaches the skip link.
	var selected, firstFocus string
	run(ctx, "arrow keys on the snippet tabs",
		chromedp.Focus(`#tab-k8s`),
		chromedp.KeyEvent(kb.ArrowRight),
		chromedp.WaitVisible(`#panel-compose`),
		into(&selected, chromedp.Evaluate[string](`document.activeElement.id + " " + document.activeElement.getAttribute("aria-selected")`)))
	if selected != "tab-compose true" {
		t.Errorf("after ArrowRight on the last tab, focus is on %q; want the first tab, selected", selected)
	}
	run(ctx, "first Tab reaches the skip link",
		chromedp.Navigate(base+"/runners"),
		chromedp.WaitVisible(`tr[data-id="web-1"]`),
		chromedp.KeyEvent(kb.Tab),
		into(&firstFocus, chromedp.Evaluate[string](`document.activeElement.className + " " + document.activeElement.getAttribute("href")`)))
	if !strings.HasPrefix(firstFocus, "skip ") || !strings.HasSuffix(firstFocus, "#main") {
		t.Errorf("the first Tab focuses %q; want the skip link to #main", firstFocus)
	}

	// (c) Revoke web-1's certificate on the certificates page, then watch
	// the runners page turn it offline live. The gateway marks a runner
	// offline offlineAfter after its last heartbeat, time enough to load
	// the runners page while web-1 is still online. (A second tab would
	// be neater, but headless Chromium stops serving a background tab.)
	row := `tr[data-subject="web-1"]:has(form)`
	run(ctx, "revoke web-1's certificate",
		chromedp.Navigate(base+"/certs"),
		chromedp.WaitVisible(row),
		chromedp.SetValue(row+` select`, "key-compromise"),
		chromedp.Click(row+` button.danger`),
		chromedp.WaitVisible(`.flash`))
	shot(ctx, "07-cert-revoked")
	var before string
	run(ctx, "runners page right after the revocation",
		chromedp.Navigate(base+"/runners"),
		chromedp.WaitVisible(`tr[data-id="web-1"]`),
		into(&before, chromedp.Evaluate[string](`document.querySelector('tr[data-id="web-1"] .badge').textContent`)),
		chromedp.WaitVisible(`body[data-live="connected"]`))
	if before != protocol.RunnerOnline {
		t.Fatalf("web-1 was %q when the runners page loaded; the live change cannot be seen", before)
	}
	run(ctx, "web-1 goes offline live", chromedp.WaitVisible(`tr[data-id="web-1"] .badge.offline`))
	shot(ctx, "08-runners-offline")
	if rev, err := h.CA.IsRevoked(context.Background(), mustRunner(t, h, "web-1").CertSerial); err != nil || !rev {
		t.Errorf("web-1's certificate revoked=%v %v", rev, err)
	}
	run(ctx, "audit log", chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(`#audit`))
	var audit string
	run(ctx, "audit text", into(&audit, chromedp.Text(`#audit`)))
	if !strings.Contains(audit, "ui:alice via leash://ui-proxy/nginx") {
		t.Errorf("the audit log does not name alice:\n%s", audit)
	}
	shot(ctx, "09-audit")
}

// offlineAfter is long enough to open a page between a revocation and
// the runner going offline.
const offlineAfter = 8 * time.Second

// startChromium starts headless Chromium trusting exactly the key of the
// nginx server certificate (--ignore-certificate-errors-spki-list pins one
// SPKI hash, unlike --ignore-certificate-errors, which would accept any
// certificate), and grants clipboard access. The browser is closed and
// waited for in t.Cleanup.
func startChromium(t *testing.T, bin, serverCert string) context.Context {
	t.Helper()
	b, err := os.ReadFile(serverCert)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-dev-shm-usage", true),
		// A tab in the background keeps running its event stream.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser process to exit
	})
	// The first Run starts the browser, which lives as long as the
	// context of that call: ctx, without a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	start, cancelStart := context.WithTimeout(ctx, time.Minute)
	defer cancelStart()
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		_, err := chromedp.CallBrowser(start, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
			Setting:    browser.PermissionSettingGranted})
		if err != nil {
			t.Fatalf("start chromium: grant %s: %v", name, err)
		}
	}
	return ctx
}

// into runs a and stores its value in dst.
func into[T any](dst *T, a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		v, err := a(ctx, t)
		*dst = v
		return chromedp.Void{}, err
	}
}

// discard runs a and drops its value.
func discard[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	var v T
	return into(&v, a)
}

func findChromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("LEASH_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	testenv.Missing(t, "chromium is not installed (Debian package chromium)")
	return ""
}

// artifactsDir is $LEASH_TEST_ARTIFACTS, else .artifacts/ui in the
// repository (gitignored), where screenshots stay after the test.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("LEASH_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", ".artifacts", "ui")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustRunner(t *testing.T, h *testharness.Harness, id string) protocol.Runner {
	t.Helper()
	r, err := h.Store.Runner(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return protocol.Runner{ID: r.ID, Status: r.Status, CertSerial: r.CertSerial}
}

func waitStatus(t *testing.T, h *testharness.Harness, id, status string) {
	t.Helper()
	testharness.Eventually(t, 15*time.Second, id+" "+status, func() bool {
		r, err := h.Store.Runner(context.Background(), id)
		return err == nil && r.Status == status
	})
}
