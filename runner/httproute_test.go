package runner

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// Only a domain of one route that takes every request unchanged to a
// plain-HTTP target is spliced; anything the runner must look at or
// rewrite goes through its reverse proxy.
func TestPassThroughOnlyForUnconditionalPlainRoutes(t *testing.T) {
	tests := []struct {
		name   string
		routes []Route
		want   *[2]string
	}{
		{"catch-all http", []Route{{Target: "http://127.0.0.1:8000"}}, &[2]string{"tcp", "127.0.0.1:8000"}},
		{"catch-all http without port", []Route{{Target: "http://localhost"}}, &[2]string{"tcp", "localhost:80"}},
		{"catch-all http with slash", []Route{{Target: "http://127.0.0.1:8000/"}}, &[2]string{"tcp", "127.0.0.1:8000"}},
		{"catch-all unix", []Route{{Target: "unix:///run/app.sock"}}, &[2]string{"unix", "/run/app.sock"}},
		{"https target", []Route{{Target: "https://127.0.0.1:8443"}}, nil},
		{"target with a path prefix", []Route{{Target: "http://127.0.0.1:8000/app"}}, nil},
		{"method filter", []Route{{Target: "http://127.0.0.1:8000", Methods: []string{"GET"}}}, nil},
		{"path filter", []Route{{Target: "http://127.0.0.1:8000", Path: "^/api/"}}, nil},
		{"host override", []Route{{Target: "http://127.0.0.1:8000", Host: "internal"}}, nil},
		{"two routes", []Route{{Target: "http://127.0.0.1:8000", Path: "^/a"}, {Target: "http://127.0.0.1:8001"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := compileDomain("app.test", tt.routes, nil)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == nil && d.passThrough != nil:
				t.Fatalf("spliced to %v; want the reverse proxy", *d.passThrough)
			case tt.want != nil && (d.passThrough == nil || *d.passThrough != *tt.want):
				t.Fatalf("pass-through %v, want %v", d.passThrough, *tt.want)
			}
		})
	}
}

// The proxied path still routes by method and path, first match wins,
// and answers 404 where no route matches.
func TestDomainRouterRoutes(t *testing.T) {
	app := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-App", name)
			w.Header().Set("X-Host", r.Host)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	api, web := app("api"), app("web")
	d, err := compileDomain("app.test", []Route{
		{Target: api.URL, Path: "^/api/", Methods: []string{"GET", "POST"}, Host: "api.internal"},
		{Target: web.URL, Methods: []string{"GET"}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path      string
		status            int
		wantApp, wantHost string
	}{
		{"GET", "/api/x", 200, "api", "api.internal"},
		{"POST", "/api/x", 200, "api", "api.internal"},
		{"GET", "/index.html", 200, "web", "app.test"},
		{"DELETE", "/api/x", 404, "", ""},
		{"POST", "/form", 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://app.test"+tt.path, nil)
			rec := httptest.NewRecorder()
			d.ServeHTTP(rec, req)
			if rec.Code != tt.status || rec.Header().Get("X-App") != tt.wantApp || rec.Header().Get("X-Host") != tt.wantHost {
				t.Fatalf("status %d, app %q, host %q; want %d %q %q", rec.Code, rec.Header().Get("X-App"), rec.Header().Get("X-Host"), tt.status, tt.wantApp, tt.wantHost)
			}
		})
	}
}
