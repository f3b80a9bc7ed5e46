package deploy

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// k8sObject is the part of a Kubernetes object the structural checks read;
// other fields are ignored.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Selector yaml.Node `yaml:"selector"` // a label map (Service) or matchLabels (workloads)
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		Ports []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
	Data map[string]string `yaml:"data"`
}

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    *int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name     string `yaml:"name"`
		HostPath *struct {
			Path string `yaml:"path"`
			Type string `yaml:"type"`
		} `yaml:"hostPath"`
	} `yaml:"volumes"`
}

type container struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom any    `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

// loadK8s parses every document of every manifest in k8s/.
func loadK8s(t *testing.T) []k8sObject {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in k8s/: %v", err)
	}
	var objs []k8sObject
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(f)
		for {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			objs = append(objs, o)
		}
		_ = f.Close()
	}
	return objs
}

// apiVersions are the API groups each kind in the kit belongs to.
var apiVersions = map[string]string{"Deployment": "apps/v1", "DaemonSet": "apps/v1", "Service": "v1",
	"ConfigMap": "v1", "PersistentVolumeClaim": "v1", "Secret": "v1"}

// TestKubernetes checks the manifests the way kubeconform would check
// their essentials (no schema download here): apiVersion/kind pairs,
// names and namespaces, selectors that match the pod labels, Service
// ports that name container ports, and for every container an image,
// resources, non-root, a read-only root filesystem, no privilege
// escalation, all capabilities dropped and mounts of declared volumes. The
// runner DaemonSet mounts the Docker socket read-only, and the runner's
// LEASH_* variables load as the runner loads them.
func TestKubernetes(t *testing.T) {
	objs := loadK8s(t)
	kinds := map[string]k8sObject{}
	for _, o := range objs {
		where := o.Kind + "/" + o.Metadata.Name
		if want, ok := apiVersions[o.Kind]; !ok || o.APIVersion != want {
			t.Errorf("%s: apiVersion %q, kind %q (known: %v)", where, o.APIVersion, o.Kind, apiVersions)
		}
		if o.Metadata.Name == "" || o.Metadata.Namespace != "leash" {
			t.Errorf("%s: want a name and namespace leash, got %q/%q", where, o.Metadata.Namespace, o.Metadata.Name)
		}
		kinds[o.Kind+"/"+o.Metadata.Name] = o
		if o.Kind == "Deployment" || o.Kind == "DaemonSet" {
			checkWorkload(t, where, o)
		}
	}
	gw, ok := kinds["Deployment/leash-gateway"]
	if !ok {
		t.Fatal("no Deployment leash-gateway")
	}
	svc, ok := kinds["Service/leash-gateway"]
	if !ok {
		t.Fatal("no Service leash-gateway")
	}
	var sel map[string]string
	if err := svc.Spec.Selector.Decode(&sel); err != nil || len(sel) == 0 {
		t.Fatalf("Service selector: %v", err)
	}
	for k, v := range sel {
		if gw.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not select the gateway's pods", k, v)
		}
	}
	ports := map[string]bool{}
	for _, p := range gw.Spec.Template.Spec.Containers[0].Ports {
		ports[p.Name] = true
	}
	for _, p := range svc.Spec.Ports {
		if name, ok := p.TargetPort.(string); !ok || !ports[name] {
			t.Errorf("Service port %s: targetPort %v names no container port", p.Name, p.TargetPort)
		}
	}
	env := map[string]string{}
	for _, e := range gw.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	checkGatewayEnv(t, "k8s gateway", env)

	ds, ok := kinds["DaemonSet/leash-runner"]
	if !ok {
		t.Fatal("no DaemonSet leash-runner")
	}
	pod := ds.Spec.Template.Spec
	sockVolume := ""
	for _, v := range pod.Volumes {
		if v.HostPath != nil && v.HostPath.Path == "/var/run/docker.sock" {
			sockVolume = v.Name
		}
	}
	mounted := false
	for _, m := range pod.Containers[0].VolumeMounts {
		if m.Name == sockVolume && m.MountPath == "/var/run/docker.sock" {
			mounted = true
			if !m.ReadOnly {
				t.Error("the runner mounts the Docker socket writable: want readOnly: true")
			}
		}
	}
	if sockVolume == "" || !mounted {
		t.Error("the runner DaemonSet does not mount the node's /var/run/docker.sock")
	}
	renv := map[string]string{}
	for _, e := range pod.Containers[0].Env {
		renv[e.Name] = e.Value
	}
	if !strings.HasPrefix(renv["LEASH_GATEWAY"], "https://leash-gateway.leash.svc:") {
		t.Errorf("runner LEASH_GATEWAY %q does not reach the Service", renv["LEASH_GATEWAY"])
	}
	delete(renv, "LEASH_CONFIG") // a ConfigMap; its content is checked below
	checkRunnerEnv(t, "k8s runner", renv, false)
	cfg := filepath.Join(t.TempDir(), "runner.yaml")
	if err := os.WriteFile(cfg, []byte(kinds["ConfigMap/leash-runner"].Data["runner.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	checkRunnerEnv(t, "k8s runner ConfigMap", map[string]string{"LEASH_CONFIG": cfg, "LEASH_NAME": "node-1",
		"LEASH_GATEWAY": renv["LEASH_GATEWAY"]}, true)
}

func checkWorkload(t *testing.T, where string, o k8sObject) {
	t.Helper()
	var sel struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	if err := o.Spec.Selector.Decode(&sel); err != nil || len(sel.MatchLabels) == 0 {
		t.Errorf("%s: no selector.matchLabels (%v)", where, err)
	}
	for k, v := range sel.MatchLabels {
		if o.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("%s: selector %s=%s does not match the pod template", where, k, v)
		}
	}
	pod := o.Spec.Template.Spec
	if pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
		pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser == 0 {
		t.Errorf("%s: the pod must set runAsNonRoot: true and a non-zero runAsUser", where)
	}
	volumes := map[string]bool{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = true
	}
	if len(pod.Containers) == 0 {
		t.Errorf("%s: no containers", where)
	}
	for _, c := range pod.Containers {
		cw := where + " container " + c.Name
		sc := c.SecurityContext
		switch {
		case c.Image == "":
			t.Errorf("%s: no image", cw)
		case c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "":
			t.Errorf("%s: want cpu and memory requests and a memory limit", cw)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s: want readOnlyRootFilesystem: true", cw)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s: want allowPrivilegeEscalation: false", cw)
		case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
			t.Errorf("%s: want runAsNonRoot: true", cw)
		case len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL":
			t.Errorf("%s: want capabilities.drop [ALL]", cw)
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				t.Errorf("%s: mounts undeclared volume %s", cw, m.Name)
			}
		}
	}
}
