package dockerproxy

import (
	"errors"
	"io"
	"net/http"
	"reflect"
	"testing"
)

func TestDiscover(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		want    []Container
		wantErr error
	}{
		{"two containers", http.StatusOK,
			`[{"Id":"abc","Names":["/web","/alias"],"Image":"nginx:1","ImageID":"sha256:x","Command":"nginx","State":"running","Status":"Up 2 hours","Labels":{"app":"web"}},
			  {"Id":"def","Names":["/job"],"Image":"busybox","State":"exited","Status":"Exited (0) 5 minutes ago","Labels":{}}]`,
			[]Container{
				{ID: "abc", Names: []string{"web", "alias"}, Image: "nginx:1", State: "running", Status: "Up 2 hours", Labels: map[string]string{"app": "web"}},
				{ID: "def", Names: []string{"job"}, Image: "busybox", State: "exited", Status: "Exited (0) 5 minutes ago", Labels: map[string]string{}},
			}, nil},
		{"none", http.StatusOK, `[]`, []Container{}, nil},
		{"engine error", http.StatusInternalServerError, `{"message":"boom"}`, nil, ErrEngine},
		{"not JSON", http.StatusOK, `nope`, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			engine := startFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			p := newProxy(t, Config{Socket: engine.socket})
			t.Cleanup(p.CloseIdleConnections)
			got, err := p.Discover(testContext(t))
			if tt.want == nil {
				if err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("Discover = %v, %v; want error %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Discover = %+v, want %+v", got, tt.want)
			}
			reqs := engine.take()
			if len(reqs) != 1 || reqs[0].Method != http.MethodGet || reqs[0].URI != "/containers/json?all=1" || reqs[0].Host != "docker" {
				t.Errorf("the engine received %+v", reqs)
			}
		})
	}
}
