package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/pgjet/pgjet/shared/pipeline"
)

// kustomization is the part of kustomize's Kustomization that deploy/k8s uses; any
// other key is an error here, so that the test is extended along with the file.
type kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Namespace  string   `yaml:"namespace"`
	Resources  []string `yaml:"resources"`
	Images     []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	} `yaml:"images"`
}

// podMonitor is the Prometheus Operator's PodMonitor (monitoring.coreos.com/v1) as far as
// deploy/k8s uses it.
type podMonitor struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `yaml:"port"`
			Path     string `yaml:"path"`
			Interval string `yaml:"interval"`
		} `yaml:"podMetricsEndpoints"`
	} `yaml:"spec"`
}

// manifests holds every object of deploy/k8s, decoded.
type manifests struct {
	configMaps   map[string]*corev1.ConfigMap
	services     map[string]*corev1.Service
	statefulSets map[string]*appsv1.StatefulSet
	deployments  map[string]*appsv1.Deployment
	podMonitors  []*podMonitor
}

// strict decodes one YAML document into obj: duplicate keys, unknown or miscased fields
// are errors (Kubernetes' own strict decoding).
func strict(doc []byte, obj any) error {
	js, err := sigsyaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strictErrs, err := sigsjson.UnmarshalStrict(js, obj)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

func knownFields(doc []byte, obj any) error {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	return dec.Decode(obj)
}

func loadManifests(t *testing.T, dir string, files []string) *manifests {
	t.Helper()
	m := &manifests{
		configMaps:   map[string]*corev1.ConfigMap{},
		services:     map[string]*corev1.Service{},
		statefulSets: map[string]*appsv1.StatefulSet{},
		deployments:  map[string]*appsv1.Deployment{},
	}
	for _, f := range files {
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(readFile(t, filepath.Join(dir, f)))))
		for n := 0; ; n++ {
			doc, err := r.Read()
			if err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			var tm metav1.TypeMeta
			if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s document %d: %v", f, n, err)
			}
			where := fmt.Sprintf("%s: %s", f, tm.Kind)
			var obj any
			var register func()
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 ConfigMap":
				o := &corev1.ConfigMap{}
				obj, register = o, func() { m.configMaps[o.Name] = o }
			case "v1 Service":
				o := &corev1.Service{}
				obj, register = o, func() { m.services[o.Name] = o }
			case "apps/v1 StatefulSet":
				o := &appsv1.StatefulSet{}
				obj, register = o, func() { m.statefulSets[o.Name] = o }
			case "apps/v1 Deployment":
				o := &appsv1.Deployment{}
				obj, register = o, func() { m.deployments[o.Name] = o }
			case "monitoring.coreos.com/v1 PodMonitor":
				o := &podMonitor{}
				if err := knownFields(doc, o); err != nil {
					t.Errorf("%s: %v", where, err)
				}
				m.podMonitors = append(m.podMonitors, o)
				continue
			case "v1 Secret":
				t.Errorf("%s: secrets are created on the cluster (deploy/README.md), never committed", where)
				continue
			default:
				t.Errorf("%s: %s %s: no check for this kind here: add one", f, tm.APIVersion, tm.Kind)
				continue
			}
			if err := strict(doc, obj); err != nil {
				t.Errorf("%s: %v", where, err)
			}
			register()
		}
	}
	return m
}

// testSecrets stand in for the Secrets' values when the pipeline file is loaded.
var testSecrets = map[string]string{
	"pgjet-postgres/dsn": "postgres://pgjet:secret@postgres:5432/app?sslmode=verify-full",
}

// TestKubernetes decodes deploy/k8s strictly into the Kubernetes API types and checks the
// collector StatefulSet and router Deployment: probes on the metrics port's /healthz and
// /readyz, non-root and read-only containers without capabilities, resources, the pipeline
// file of the ConfigMap loading with each container's environment, Secrets referenced
// (not committed) and documented, and the PodMonitor selecting both.
func TestKubernetes(t *testing.T) {
	repo := root(t)
	dir := filepath.Join(repo, "deploy", "k8s")

	var k kustomization
	if err := knownFields(readFile(t, filepath.Join(dir, "kustomization.yaml")), &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: %s %s", k.APIVersion, k.Kind)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	var all []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			all = append(all, b)
		}
	}
	if !slices.Equal(sortedCopy(k.Resources), all) {
		t.Errorf("kustomization.yaml resources %v, but the directory has %v", k.Resources, all)
	}
	m := loadManifests(t, dir, all)

	// The ConfigMap is deploy/pipeline/users-cloudevents.yaml.
	cm := m.configMaps["pgjet-pipeline"]
	if cm == nil {
		t.Fatal("no ConfigMap pgjet-pipeline")
	}
	seed := string(readFile(t, filepath.Join(repo, "deploy", "pipeline", "users-cloudevents.yaml")))
	if cm.Data["pipeline.yaml"] != seed {
		t.Errorf("ConfigMap pgjet-pipeline: pipeline.yaml differs from deploy/pipeline/users-cloudevents.yaml: copy it again")
	}

	readme := string(readFile(t, filepath.Join(repo, "deploy", "README.md")))
	kustomizeText := string(readFile(t, filepath.Join(dir, "kustomization.yaml")))
	images := map[string]bool{}
	for _, i := range k.Images {
		images[i.Name] = true
	}

	type workload struct {
		name, binary string
		port         int
		scope        pipeline.Scope
		pod          *corev1.PodTemplateSpec
		selector     *metav1.LabelSelector
	}
	var workloads []workload
	if ss := m.statefulSets["pgjet-collector"]; ss == nil {
		t.Error("no StatefulSet pgjet-collector")
	} else {
		checkReplicas(t, "StatefulSet pgjet-collector", ss.Spec.Replicas, &ss.Spec.Template, true)
		if svc := m.services[ss.Spec.ServiceName]; svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("StatefulSet pgjet-collector: serviceName %q is no headless Service here", ss.Spec.ServiceName)
		} else if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(ss.Spec.Template.Labels)) {
			t.Errorf("Service %s does not select the collector's pods", svc.Name)
		}
		if len(ss.Spec.VolumeClaimTemplates) != 0 {
			t.Error("StatefulSet pgjet-collector: volumeClaimTemplates, but the shape documented is an external NATS (no state)")
		}
		workloads = append(workloads, workload{"StatefulSet pgjet-collector", "pgjet-collector", collectorMetricsPort, pipeline.ScopeCollector, &ss.Spec.Template, ss.Spec.Selector})
	}
	if d := m.deployments["pgjet-router"]; d == nil {
		t.Error("no Deployment pgjet-router")
	} else {
		checkReplicas(t, "Deployment pgjet-router", d.Spec.Replicas, &d.Spec.Template, d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType)
		workloads = append(workloads, workload{"Deployment pgjet-router", "pgjet-router", routerMetricsPort, pipeline.ScopeRouter, &d.Spec.Template, d.Spec.Selector})
	}

	secrets := map[string]bool{}
	for _, w := range workloads {
		pod := w.pod
		sel, err := metav1.LabelSelectorAsSelector(w.selector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			t.Errorf("%s: selector %v does not match its pods' labels %v", w.name, w.selector, pod.Labels)
		}
		ps := pod.Spec.SecurityContext
		if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 ||
			ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod securityContext: want runAsNonRoot, a non-zero runAsUser and seccomp RuntimeDefault", w.name)
		}
		if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken: want false (pgjet does not call the API server)", w.name)
		}
		for _, mon := range m.podMonitors {
			if !labels.SelectorFromSet(mon.Spec.Selector.MatchLabels).Matches(labels.Set(pod.Labels)) {
				t.Errorf("PodMonitor %s does not select %s's pods", mon.Metadata.Name, w.name)
			}
		}
		volumes := map[string]corev1.Volume{}
		for _, v := range pod.Spec.Volumes {
			volumes[v.Name] = v
			if v.Secret != nil {
				secrets[v.Secret.SecretName] = true
				if v.Secret.DefaultMode != nil && *v.Secret.DefaultMode&0o040 == 0 && ps != nil && ps.FSGroup != nil {
					t.Errorf("%s: secret volume %s mode %o: group %d (fsGroup) cannot read it", w.name, v.Name, *v.Secret.DefaultMode, *ps.FSGroup)
				}
			}
		}
		if len(pod.Spec.Containers) != 1 {
			t.Errorf("%s: %d containers, want 1", w.name, len(pod.Spec.Containers))
			continue
		}
		c := pod.Spec.Containers[0]
		where := w.name + " container " + c.Name
		if name, _, _ := strings.Cut(c.Image, ":"); !images[name] {
			t.Errorf("%s: image %s has no entry in kustomization.yaml's images", where, c.Image)
		}
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: securityContext: want allowPrivilegeEscalation false, readOnlyRootFilesystem, runAsNonRoot, capabilities drop [ALL]", where)
		}

		// Resources, and the Go runtime's soft limit below the hard one.
		limit := c.Resources.Limits[corev1.ResourceMemory]
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || limit.IsZero() {
			t.Errorf("%s: want cpu and memory requests and a memory limit", where)
		}

		// The metrics port, the listener on it, and the probes.
		env := map[string]string{}
		for _, e := range c.Env {
			switch {
			case e.ValueFrom == nil:
				env[e.Name] = e.Value
			case e.ValueFrom.SecretKeyRef != nil:
				ref := e.ValueFrom.SecretKeyRef
				secrets[ref.Name] = true
				v, ok := testSecrets[ref.Name+"/"+ref.Key]
				if !ok {
					t.Errorf("%s: %s from secret %s key %s: add a test value to testSecrets", where, e.Name, ref.Name, ref.Key)
				}
				env[e.Name] = v
			default:
				t.Errorf("%s: %s: only values and secretKeyRef are checked here", where, e.Name)
			}
		}
		if ml, ok := env["PGJET_MEMORY_LIMIT"]; ok {
			q, err := resource.ParseQuantity(strings.TrimSuffix(ml, "B"))
			if err != nil || q.Cmp(limit) >= 0 {
				t.Errorf("%s: PGJET_MEMORY_LIMIT=%s: want a size below the memory limit %s", where, ml, limit.String())
			}
		}
		checkEnvNames(t, where+" env", w.binary, env)
		checkArgs(t, where+" args", w.binary, c.Args)
		if len(c.Command) > 0 {
			t.Errorf("%s: command %v replaces the image's entrypoint: give args", where, c.Command)
		}
		if want := fmt.Sprintf("0.0.0.0:%d", w.port); env["PGJET_METRICS"] != want {
			t.Errorf("%s: PGJET_METRICS=%q, want %s", where, env["PGJET_METRICS"], want)
		}
		var metricsPort *corev1.ContainerPort
		for i, p := range c.Ports {
			if p.Name == "metrics" {
				metricsPort = &c.Ports[i]
			}
		}
		if metricsPort == nil || metricsPort.ContainerPort != int32(w.port) {
			t.Errorf("%s: want a port named metrics, %d", where, w.port)
		}
		for _, p := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{{"livenessProbe", c.LivenessProbe, "/healthz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s: no %s with httpGet", where, p.name)
				continue
			}
			g := p.probe.HTTPGet
			port := g.Port.String()
			if g.Path != p.path || (port != "metrics" && port != strconv.Itoa(w.port)) {
				t.Errorf("%s: %s gets %s on port %s, want %s on the metrics port", where, p.name, g.Path, port, p.path)
			}
		}

		// Mounts: every file path given in the environment or args lies in a mounted
		// volume; --config names the ConfigMap's pipeline.yaml.
		mountOf := func(file string) (corev1.VolumeMount, bool) {
			for _, vm := range c.VolumeMounts {
				if strings.HasPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/") {
					return vm, true
				}
			}
			return corev1.VolumeMount{}, false
		}
		for _, vm := range c.VolumeMounts {
			if _, ok := volumes[vm.Name]; !ok {
				t.Errorf("%s: mount %s names no volume", where, vm.Name)
			}
			if !vm.ReadOnly {
				t.Errorf("%s: mount %s is writable", where, vm.Name)
			}
		}
		fileEnv := map[string]bool{}
		for _, k := range sortedKeys(env) {
			if v := env[k]; strings.HasPrefix(v, "/") {
				if _, ok := mountOf(v); !ok {
					t.Errorf("%s: %s=%s is in no mounted volume (the root filesystem is read-only and has no such file)", where, k, v)
				}
				fileEnv[k] = true
			}
		}
		i := slices.Index(c.Args, "--config")
		if i < 0 || i+1 >= len(c.Args) {
			t.Errorf("%s: no --config in args %v", where, c.Args)
			continue
		}
		config := c.Args[i+1]
		vm, ok := mountOf(config)
		if v := volumes[vm.Name]; !ok || v.ConfigMap == nil || v.ConfigMap.Name != cm.Name ||
			strings.TrimPrefix(config, strings.TrimSuffix(vm.MountPath, "/")+"/") != "pipeline.yaml" {
			t.Errorf("%s: --config %s is not the ConfigMap %s's pipeline.yaml", where, config, cm.Name)
		}

		// The pipeline file loads with this container's environment, in this binary's
		// scope, and the binary accepts it (without the secret files, which exist only
		// in the pod).
		loadPipeline(t, where, []byte(cm.Data["pipeline.yaml"]), env, w.scope)
		tmp := filepath.Join(t.TempDir(), "pipeline.yaml")
		if err := os.WriteFile(tmp, []byte(cm.Data["pipeline.yaml"]), 0o644); err != nil {
			t.Fatal(err)
		}
		checkEnv := map[string]string{}
		for k, v := range env {
			if !fileEnv[k] {
				checkEnv[k] = v
			}
		}
		checkConfig(t, where, w.binary, tmp, checkEnv)
	}

	for _, mon := range m.podMonitors {
		if len(mon.Spec.PodMetricsEndpoints) == 0 {
			t.Errorf("PodMonitor %s: no podMetricsEndpoints", mon.Metadata.Name)
		}
		for _, e := range mon.Spec.PodMetricsEndpoints {
			if e.Port != "metrics" || e.Path != "/metrics" {
				t.Errorf("PodMonitor %s: endpoint port %q path %q, want metrics /metrics", mon.Metadata.Name, e.Port, e.Path)
			}
		}
	}
	if len(m.podMonitors) == 0 {
		t.Error("no PodMonitor: nothing scrapes the metrics port")
	}

	// Secrets: referenced, never committed (loadManifests refuses kind Secret), and how to
	// create each is written down.
	if len(secrets) == 0 {
		t.Error("no Secret referenced: the DSN must come from one")
	}
	for _, s := range sortedKeys(secrets) {
		if !strings.Contains(readme, "kubectl create secret generic "+s) || !strings.Contains(kustomizeText, "kubectl create secret generic "+s) {
			t.Errorf("Secret %s: deploy/README.md and kustomization.yaml must show `kubectl create secret generic %s`", s, s)
		}
	}
}

// checkReplicas: a slot or a durable consumer has one reader at a time. One pod, replaced
// by stopping the old one first (recreate); or more, each a standby (--standby) but one.
func checkReplicas(t *testing.T, where string, replicas *int32, pod *corev1.PodTemplateSpec, recreate bool) {
	t.Helper()
	n := int32(1)
	if replicas != nil {
		n = *replicas
	}
	standby := false
	for _, c := range pod.Spec.Containers {
		for _, e := range c.Env {
			standby = standby || e.Name == "PGJET_STANDBY" && e.Value == "true"
		}
	}
	switch {
	case n < 1:
		t.Errorf("%s: replicas %d", where, n)
	case n == 1 && !recreate && !standby:
		t.Errorf("%s: a rollout runs two pods at once: use strategy Recreate or PGJET_STANDBY=true", where)
	case n > 1 && !standby:
		t.Errorf("%s: %d replicas without PGJET_STANDBY=true", where, n)
	}
}
