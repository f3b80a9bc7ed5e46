package ui

import (
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/protocol"
)

// page is what every template gets.
type page struct {
	Title, Nav string
	Prefix     string
	User       string
	CSRF       string
	Flash      string
	Live       string // what the page's event stream follows: "runners", "runner:<id>" or ""
	Data       any
}

func funcs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"ts": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return now().Sub(t).Round(time.Second).String() + " ago"
		},
		"expiryClass": func(t time.Time) string { return expiryClass(now(), t) },
		"labels": func(m map[string]string) string {
			var parts []string
			for k, v := range m {
				parts = append(parts, k+"="+v)
			}
			slices.Sort(parts)
			return strings.Join(parts, ", ")
		},
		"reasons":  ca.ReasonNames,
		"navItems": func() []navItem { return nav },
	}
}

type navItem struct{ ID, Path, Label string }

var nav = []navItem{{"overview", "/", "Overview"}, {"runners", "/runners", "Runners"}, {"certs", "/certs", "Certificates"},
	{"tokens", "/tokens", "Tokens"}, {"jobs", "/jobs", "Jobs"}, {"audit", "/audit", "Audit log"}}

// expiryClass colours a runner certificate's not-after: expired, within
// 6 hours (a runner renews at two thirds of its lifetime, so with the
// default one-day certificates it is late), or fine.
func expiryClass(now, t time.Time) string {
	switch d := t.Sub(now); {
	case t.IsZero():
		return ""
	case d <= 0:
		return "expired"
	case d < 6*time.Hour:
		return "expiring"
	}
	return "ok"
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	rq := requestFrom(r)
	p.Prefix, p.User, p.CSRF = rq.prefix, rq.user, h.csrfToken(rq)
	if p.Nav == "" {
		p.Nav = name
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := h.pages[name].Execute(w, p); err != nil {
		h.o.Log.Error("ui render", "page", name, "err", err)
	}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, r, status, "error", page{Title: http.StatusText(status), Nav: "-", Data: msg})
}

func (h *Handler) internal(w http.ResponseWriter, r *http.Request, err error) {
	h.o.Log.Error("ui request failed", "path", r.URL.Path, "err", err)
	h.fail(w, r, http.StatusInternalServerError, "Something went wrong; the gateway log has details.")
}

// redirect answers 303 to a page below the validated prefix. to is a
// fixed path of this package plus escaped parameters, never user input.
func (h *Handler) redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, requestFrom(r).prefix+to, http.StatusSeeOther)
}

type counts struct {
	Runners, Online, Offline, Revoked              int
	Certs, CertsValid, CertsExpiring, CertsRevoked int
	TokensPending, Jobs, JobsQueued, JobsRunning   int
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var c counts
	rs, err := h.o.Backend.Runners(ctx)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	for _, rn := range rs {
		c.Runners++
		switch rn.Status {
		case protocol.RunnerOnline:
			c.Online++
		case protocol.RunnerOffline:
			c.Offline++
		case protocol.RunnerRevoked:
			c.Revoked++
		}
	}
	certs, err := h.o.Backend.Certificates(ctx, 0)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	for _, ci := range certs {
		c.Certs++
		switch ci.Status {
		case ca.StatusValid:
			c.CertsValid++
		case ca.StatusExpiring:
			c.CertsExpiring++
		case ca.StatusRevoked:
			c.CertsRevoked++
		}
	}
	toks, err := h.o.Backend.Tokens(ctx)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	for _, t := range toks {
		if t.State == ca.TokenPending {
			c.TokensPending++
		}
	}
	jobs, err := h.o.Backend.Jobs(ctx, "", 1000)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	for _, j := range jobs {
		c.Jobs++
		switch j.State {
		case protocol.JobQueued:
			c.JobsQueued++
		case protocol.JobRunning:
			c.JobsRunning++
		}
	}
	h.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Data: c})
}

func (h *Handler) runners(w http.ResponseWriter, r *http.Request) {
	rs, err := h.o.Backend.Runners(r.Context())
	if err != nil {
		h.internal(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "runners", page{Title: "Runners", Live: "runners", Data: rs})
}

type runnerDetail struct {
	Runner        protocol.Runner
	Events        []store.EventRecord
	Jobs          []protocol.Job
	Containers    []protocol.Container
	ContainersErr string
	Domains       []protocol.Domain
	Session       protocol.SessionStatus
	SessionErr    string
}

func (h *Handler) runner(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	rn, err := h.o.Backend.Runner(ctx, id)
	if errors.Is(err, ErrNotFound) {
		h.fail(w, r, http.StatusNotFound, "No runner "+id+".")
		return
	}
	if err != nil {
		h.internal(w, r, err)
		return
	}
	d := runnerDetail{Runner: rn}
	if d.Events, err = h.o.Backend.Events(ctx, id, 0, 0); err == nil && len(d.Events) > 200 {
		d.Events = d.Events[len(d.Events)-200:]
	}
	if err == nil {
		d.Jobs, err = h.o.Backend.Jobs(ctx, id, 50)
	}
	if err == nil {
		d.Domains, err = h.o.Backend.Domains(ctx, id)
	}
	if err != nil {
		h.internal(w, r, err)
		return
	}
	if d.Session, err = h.o.Backend.Session(ctx, id); err != nil {
		d.SessionErr = err.Error()
	}
	if d.Containers, err = h.o.Backend.Containers(ctx, id); err != nil {
		d.ContainersErr = err.Error()
	}
	h.render(w, r, http.StatusOK, "runner", page{Title: "Runner " + id, Nav: "runners", Live: "runner:" + id,
		Flash: flash(r), Data: d})
}

// flash is the confirmation named by the "done" parameter of a redirect;
// only known values are shown.
func flash(r *http.Request) string {
	return map[string]string{
		"revoked":        "Certificate revoked.",
		"runner-revoked": "Runner revoked: its certificates are on the CRL and its connections closed.",
		"token-revoked":  "Token revoked.",
	}[r.URL.Query().Get("done")]
}

func (h *Handler) revokeRunner(w http.ResponseWriter, r *http.Request) {
	rq := requestFrom(r)
	if !h.checkPost(w, r, rq) {
		return
	}
	id := r.PathValue("id")
	err := h.o.Backend.RevokeRunner(r.Context(), id, r.PostForm.Get("reason"), rq.actor())
	if h.userError(w, r, err) {
		return
	}
	h.redirect(w, r, "/runners/"+pathEscape(id)+"?done=runner-revoked")
}

// userError answers a failed action: ErrInvalid and ErrNotFound with
// their text, anything else as internal. It reports whether err was set.
func (h *Handler) userError(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrInvalid):
		h.fail(w, r, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrNotFound):
		h.fail(w, r, http.StatusNotFound, err.Error())
	default:
		h.internal(w, r, err)
	}
	return true
}

func pathEscape(s string) string {
	return strings.NewReplacer("%", "%25", "/", "%2F", "?", "%3F", "#", "%23").Replace(s)
}

type certsData struct {
	Certs  []ca.CertInfo
	Filter string
}

func (h *Handler) certs(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("status")
	all, err := h.o.Backend.Certificates(r.Context(), 1000)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	d := certsData{Filter: filter}
	for _, c := range all {
		if filter == "" || string(c.Status) == filter {
			d.Certs = append(d.Certs, c)
		}
	}
	h.render(w, r, http.StatusOK, "certs", page{Title: "Certificates", Flash: flash(r), Data: d})
}

func (h *Handler) revokeCert(w http.ResponseWriter, r *http.Request) {
	rq := requestFrom(r)
	if !h.checkPost(w, r, rq) {
		return
	}
	err := h.o.Backend.RevokeCert(r.Context(), r.PostForm.Get("serial"), r.PostForm.Get("reason"),
		r.PostForm.Get("text"), rq.actor())
	if h.userError(w, r, err) {
		return
	}
	h.redirect(w, r, "/certs?done=revoked")
}

func (h *Handler) crl(w http.ResponseWriter, r *http.Request) {
	der, err := h.o.Backend.CRL(r.Context())
	if err != nil {
		h.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("Content-Disposition", `attachment; filename="leash.crl"`)
	_, _ = w.Write(der)
}

type tokensData struct {
	Tokens   []ca.TokenInfo
	New      *ca.Token
	Snippets []snippet
	Install  Install
	Name     string
}

func (h *Handler) tokens(w http.ResponseWriter, r *http.Request) {
	h.tokenPage(w, r, http.StatusOK, tokensData{})
}

func (h *Handler) tokenPage(w http.ResponseWriter, r *http.Request, status int, d tokensData) {
	toks, err := h.o.Backend.Tokens(r.Context())
	if err != nil {
		h.internal(w, r, err)
		return
	}
	d.Tokens, d.Install = toks, h.o.Install
	h.render(w, r, status, "tokens", page{Title: "Tokens", Flash: flash(r), Data: d})
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) {
	rq := requestFrom(r)
	if !h.checkPost(w, r, rq) {
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	tok, err := h.o.Backend.CreateToken(r.Context(), name, r.PostForm.Get("regenerate") != "", rq.actor())
	if h.userError(w, r, err) {
		return
	}
	// The token is shown once, in this answer; no redirect would keep it.
	h.tokenPage(w, r, http.StatusOK, tokensData{New: &tok, Name: name, Snippets: snippets(h.o.Install, tok.Subject, tok.Value)})
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request) {
	rq := requestFrom(r)
	if !h.checkPost(w, r, rq) {
		return
	}
	if h.userError(w, r, h.o.Backend.RevokeToken(r.Context(), r.PostForm.Get("id"), rq.actor())) {
		return
	}
	h.redirect(w, r, "/tokens?done=token-revoked")
}

func (h *Handler) jobs(w http.ResponseWriter, r *http.Request) {
	jobs, err := h.o.Backend.Jobs(r.Context(), "", 200)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "jobs", page{Title: "Jobs", Data: jobs})
}

func (h *Handler) audit(w http.ResponseWriter, r *http.Request) {
	limit := 200
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 && n <= 5000 {
		limit = n
	}
	rows, err := h.o.Backend.Audit(r.Context(), limit)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "audit", page{Title: "Audit log", Data: rows})
}
