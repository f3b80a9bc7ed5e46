package ui

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
)

func withRequest(ctx context.Context, rq request) context.Context {
	return context.WithValue(ctx, ctxKey{}, rq)
}

func requestFrom(r *http.Request) request {
	rq, _ := r.Context().Value(ctxKey{}).(request)
	return rq
}

// csrfToken is the form token of a person behind one proxy identity. It
// does not change between requests, so that several tabs work; it is
// worthless elsewhere because it is bound to the user and the proxy.
func (h *Handler) csrfToken(rq request) string {
	m := hmac.New(sha256.New, h.o.CSRFKey)
	m.Write([]byte("leash-ui-csrf\x00" + rq.user + "\x00" + rq.proxy.String()))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkPost refuses a state change that is not a same-origin POST with
// the right token, answering 403; it reports whether to go on.
func (h *Handler) checkPost(w http.ResponseWriter, r *http.Request, rq request) bool {
	why := ""
	switch site := r.Header.Get("Sec-Fetch-Site"); {
	case r.Method != http.MethodPost:
		why = "method"
	case site != "" && site != "same-origin":
		why = "Sec-Fetch-Site " + site
	case r.Header.Get("Origin") != "" && !sameOrigin(r.Header.Get("Origin"), rq.origin):
		why = "Origin " + r.Header.Get("Origin") + " is not " + rq.origin
	case r.Header.Get("Origin") == "" && site == "":
		why = "neither Origin nor Sec-Fetch-Site"
	}
	if why == "" {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			why = "form: " + err.Error()
		} else if got := r.PostForm.Get("csrf"); !hmac.Equal([]byte(got), []byte(h.csrfToken(rq))) {
			why = "missing or wrong CSRF token"
		}
	}
	if why == "" {
		return true
	}
	h.o.Log.Warn("ui state change refused", "user", rq.user, "path", r.URL.Path, "why", why)
	h.fail(w, r, http.StatusForbidden, "This request was refused as a possible cross-site request forgery. Reload the page and try again.")
	return false
}

func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Scheme == ub.Scheme && ua.Host == ub.Host && ua.Host != ""
}
