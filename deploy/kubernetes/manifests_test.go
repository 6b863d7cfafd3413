// Package kubernetes holds no code: its test reads the manifests in this
// directory and checks that they agree with each other, with the image
// (../../Dockerfile) and with the service's configuration (the modules' sections, loaded by app.LoadConfig),
// and decodes each strictly into the k8s.io/api types (types_test.go). It is
// a module of its own, whose go.mod pins k8s.io/api, so that the service's
// go.mod stays free of it; CI vets and tests it (.ci/run).
package kubernetes

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/meshkit/meshkit/app"
	"github.com/meshkit/meshkit/app/apptest/confignames"
	"github.com/meshkit/meshkit/internal/config"
	"github.com/meshkit/meshkit/modules/health"
	"github.com/meshkit/meshkit/modules/httpserver"
)

const (
	kustomizationFile = "kustomization.yaml"
	secretExampleFile = "secret.example.yaml"
	dockerfile        = "../../Dockerfile"

	// stopMargin is the part of the shutdown budget after the drain delay
	// and the shutdown timeout (closing Redis, flushing telemetry), as in
	// app.StopTimeout.
	stopMargin = 5 * time.Second
)

// header is what every Kubernetes object has.
type header struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
}

// object is one document of a manifest file.
type object struct {
	header
	file string
	node *yaml.Node
}

func (o object) String() string { return o.file + ": " + o.Kind + " " + o.Metadata.Name }

type labelSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []any             `yaml:"matchExpressions"`
}

type deployment struct {
	Spec struct {
		Replicas *int          `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int64          `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               securityContext `yaml:"securityContext"`
	TopologySpreadConstraints     []struct {
		LabelSelector labelSelector `yaml:"labelSelector"`
	} `yaml:"topologySpreadConstraints"`
	Containers []container `yaml:"containers"`
}

type securityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	Capabilities             struct {
		Add  []string `yaml:"add"`
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type container struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env       []envVar `yaml:"env"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext securityContext `yaml:"securityContext"`
	StartupProbe    *probe          `yaml:"startupProbe"`
	LivenessProbe   *probe          `yaml:"livenessProbe"`
	ReadinessProbe  *probe          `yaml:"readinessProbe"`
	Lifecycle       *struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int64 `yaml:"seconds"`
			} `yaml:"sleep"`
			Exec    any `yaml:"exec"`
			HTTPGet any `yaml:"httpGet"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
}

type probe struct {
	HTTPGet *struct {
		Path   string `yaml:"path"`
		Port   any    `yaml:"port"` // a name or a number
		Scheme string `yaml:"scheme"`
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

// period and failureThreshold apply Kubernetes' defaults (10s, 3).
func (p *probe) period() time.Duration {
	return time.Duration(cmpOr(p.PeriodSeconds, 10)) * time.Second
}

func (p *probe) failureThreshold() int { return cmpOr(p.FailureThreshold, 3) }

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

type service struct {
	Spec struct {
		Type     string            `yaml:"type"`
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type podDisruptionBudget struct {
	Spec struct {
		MinAvailable   any           `yaml:"minAvailable"`
		MaxUnavailable any           `yaml:"maxUnavailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type secret struct {
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

// readObjects reads every document of every manifest in this directory
// (the YAML files but the kustomization).
func readObjects(t *testing.T) []object {
	t.Helper()
	var objects []object
	for _, file := range manifestFiles(t) {
		data, err := os.ReadFile(file) //nolint:gosec // G304: the manifests of this directory
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var node yaml.Node
			if err := dec.Decode(&node); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			o := object{file: file, node: &node}
			if err := node.Decode(&o.header); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if o.Kind == "" { // an empty document, e.g. after a trailing ---
				continue
			}
			objects = append(objects, o)
		}
	}
	return objects
}

// manifestFiles are the YAML files of this directory but the kustomization.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(files, func(f string) bool { return f == kustomizationFile })
}

// only returns the one object of a kind and API version, decoded into T.
func only[T any](t *testing.T, objects []object, apiVersion, kind string) (T, object) {
	t.Helper()
	var found []object
	for _, o := range objects {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	var v T
	if len(found) != 1 {
		t.Fatalf("want one %s, found %d: %v", kind, len(found), found)
	}
	o := found[0]
	if o.APIVersion != apiVersion {
		t.Fatalf("%v: apiVersion %q, want %q", o, o.APIVersion, apiVersion)
	}
	if err := o.node.Decode(&v); err != nil {
		t.Fatalf("%v: %v", o, err)
	}
	return v, o
}

// manifests are the decoded objects the checks look at.
type manifests struct {
	deployment deployment
	container  container
	service    service
	pdb        podDisruptionBudget
	secret     secret
	secretObj  object
}

func readManifests(t *testing.T) manifests {
	t.Helper()
	objects := readObjects(t)
	var m manifests
	m.deployment, _ = only[deployment](t, objects, "apps/v1", "Deployment")
	m.service, _ = only[service](t, objects, "v1", "Service")
	m.pdb, _ = only[podDisruptionBudget](t, objects, "policy/v1", "PodDisruptionBudget")
	m.secret, m.secretObj = only[secret](t, objects, "v1", "Secret")
	if m.secretObj.file != secretExampleFile {
		t.Fatalf("%v: the only Secret is the example, in %s", m.secretObj, secretExampleFile)
	}
	containers := m.deployment.Spec.Template.Spec.Containers
	if len(containers) != 1 {
		t.Fatalf("Deployment: want one container, found %d", len(containers))
	}
	m.container = containers[0]
	return m
}

// env is the container's environment, with the secret's value (which the
// manifests do not hold) replaced by secretValue.
func (m manifests) env(t *testing.T, secretValue string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range m.container.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("Deployment: %s is set twice (the last one wins)", e.Name)
		}
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = secretValue
		default:
			t.Errorf("Deployment: %s: only value and valueFrom.secretKeyRef are checked by this test", e.Name)
		}
	}
	return env
}

func (m manifests) config(t *testing.T) (serviceConfig, map[string]string) {
	t.Helper()
	env := m.env(t, strings.Repeat("k", 48))
	loaded, err := app.LoadConfig(config.Source{Lookup: config.MapLookup(env)})
	if err != nil {
		t.Fatalf("Deployment: the container's environment does not load: %v", err)
	}
	cfg := serviceConfig{Env: loaded.Env(), StopTimeout: app.StopTimeout(loaded)}
	if cfg.HTTP, err = config.ValueOf[httpserver.Config](loaded, "http"); err != nil {
		t.Fatal(err)
	}
	if cfg.Health, err = config.ValueOf[health.Config](loaded, "health"); err != nil {
		t.Fatal(err)
	}
	return cfg, env
}

// serviceConfig is what the tests read of the service's loaded configuration.
type serviceConfig struct {
	Env         string
	HTTP        httpserver.Config
	Health      health.Config
	StopTimeout time.Duration
}

// containerPort is the number of the container's port called name.
func (m manifests) containerPort(t *testing.T, name string) int {
	t.Helper()
	for _, p := range m.container.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("Deployment: the container has no port named %q", name)
	return 0
}

func listenPort(t *testing.T, variable, addr string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s=%q: %v", variable, addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n == 0 {
		t.Fatalf("%s=%q: want a fixed port number", variable, addr)
	}
	return n
}

// TestManifestsKindsAndKustomization: the Deployment, Service and
// PodDisruptionBudget are there with their API versions, and the
// kustomization lists exactly the manifests but the example Secret.
func TestManifestsKindsAndKustomization(t *testing.T) {
	objects := readObjects(t)
	want := map[string]bool{}
	for _, o := range objects {
		if o.file != secretExampleFile {
			want[o.file] = true
		}
	}
	readManifests(t) // the kinds and versions

	data, err := os.ReadFile(kustomizationFile)
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Resources  []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatalf("%s: %v", kustomizationFile, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("%s: %s %s, want kustomize.config.k8s.io/v1beta1 Kustomization", kustomizationFile, k.APIVersion, k.Kind)
	}
	got := map[string]bool{}
	for _, r := range k.Resources {
		got[r] = true
	}
	if !maps.Equal(got, want) {
		t.Errorf("%s lists %v, want the manifests but %s: %v", kustomizationFile, slices.Sorted(maps.Keys(got)), secretExampleFile, slices.Sorted(maps.Keys(want)))
	}
}

// TestManifestsSelectorsMatch: the Service, the PodDisruptionBudget and the
// topology spread select exactly the Deployment's pods.
func TestManifestsSelectorsMatch(t *testing.T) {
	m := readManifests(t)
	sel := m.deployment.Spec.Selector
	if len(sel.MatchLabels) == 0 || len(sel.MatchExpressions) != 0 {
		t.Fatalf("Deployment: want a selector of matchLabels only, got %+v", sel)
	}
	labels := m.deployment.Spec.Template.Metadata.Labels
	for k, v := range sel.MatchLabels {
		if labels[k] != v {
			t.Errorf("Deployment: the pod template's labels %v miss the selector's %s=%s", labels, k, v)
		}
	}
	if !maps.Equal(m.service.Spec.Selector, sel.MatchLabels) {
		t.Errorf("Service: selector %v, want the Deployment's %v", m.service.Spec.Selector, sel.MatchLabels)
	}
	if s := m.pdb.Spec.Selector; !maps.Equal(s.MatchLabels, sel.MatchLabels) || len(s.MatchExpressions) != 0 {
		t.Errorf("PodDisruptionBudget: selector %+v, want the Deployment's matchLabels %v", s, sel.MatchLabels)
	}
	for i, c := range m.deployment.Spec.Template.Spec.TopologySpreadConstraints {
		if !maps.Equal(c.LabelSelector.MatchLabels, sel.MatchLabels) {
			t.Errorf("Deployment: topologySpreadConstraints[%d] selects %v, want the Deployment's %v", i, c.LabelSelector.MatchLabels, sel.MatchLabels)
		}
	}
}

// TestManifestsPortsAndProbes: the ports named http and admin are the
// listeners' ports from the configuration the environment makes, the probes
// go to the admin port by name, and the Service exposes the API only.
func TestManifestsPortsAndProbes(t *testing.T) {
	m := readManifests(t)
	cfg, _ := m.config(t)
	httpPort := m.containerPort(t, "http")
	adminPort := m.containerPort(t, "admin")
	if want := listenPort(t, "SERVICE_HTTP_ADDR", cfg.HTTP.Addr); httpPort != want {
		t.Errorf("Deployment: port http is %d, the API listens on %d (SERVICE_HTTP_ADDR=%s)", httpPort, want, cfg.HTTP.Addr)
	}
	if want := listenPort(t, "SERVICE_ADMIN_ADDR", cfg.HTTP.AdminAddr); adminPort != want {
		t.Errorf("Deployment: port admin is %d, the admin listener is on %d (SERVICE_ADMIN_ADDR=%s)", adminPort, want, cfg.HTTP.AdminAddr)
	}
	exposed := dockerfileInstruction(t, "EXPOSE")
	for _, p := range m.container.Ports {
		if !slices.Contains(exposed, strconv.Itoa(p.ContainerPort)) {
			t.Errorf("Deployment: port %s (%d) is not among the image's EXPOSE %v", p.Name, p.ContainerPort, exposed)
		}
	}

	for _, pr := range []struct {
		name string
		p    *probe
		path string
	}{
		{"startupProbe", m.container.StartupProbe, "/livez"},
		{"livenessProbe", m.container.LivenessProbe, "/livez"},
		{"readinessProbe", m.container.ReadinessProbe, "/readyz"},
	} {
		switch {
		case pr.p == nil || pr.p.HTTPGet == nil:
			t.Errorf("Deployment: no %s with httpGet", pr.name)
		case pr.p.HTTPGet.Path != pr.path:
			t.Errorf("Deployment: %s asks %s, want %s", pr.name, pr.p.HTTPGet.Path, pr.path)
		case pr.p.HTTPGet.Port != "admin":
			t.Errorf("Deployment: %s goes to port %v, want the port named admin (with mutual TLS the kubelet cannot talk to the API port)", pr.name, pr.p.HTTPGet.Port)
		case pr.p.HTTPGet.Scheme != "" && pr.p.HTTPGet.Scheme != "HTTP":
			t.Errorf("Deployment: %s uses scheme %s; the admin listener is plain HTTP", pr.name, pr.p.HTTPGet.Scheme)
		}
	}

	if typ := m.service.Spec.Type; typ != "" && typ != "ClusterIP" {
		t.Errorf("Service: type %s, want ClusterIP", typ)
	}
	var api bool
	for _, p := range m.service.Spec.Ports {
		switch p.TargetPort {
		case "http", httpPort:
			api = true
		case "admin", adminPort:
			t.Errorf("Service: port %s targets the admin port: keep it out of the Service (README.md)", p.Name)
		default:
			t.Errorf("Service: port %s targets %v, which is no port of the container", p.Name, p.TargetPort)
		}
	}
	if !api {
		t.Error("Service: no port targets the container's port http")
	}
	if a := m.deployment.Spec.Template.Metadata.Annotations; a["prometheus.io/scrape"] == "true" && a["prometheus.io/port"] != strconv.Itoa(adminPort) {
		t.Errorf("Deployment: prometheus.io/port %q, want the admin port %d", a["prometheus.io/port"], adminPort)
	}
}

// TestManifestsShutdownBudget: the grace period covers the whole stop (the
// drain delay, the shutdown timeout, the margin and any preStop sleep), and
// the readiness probe notices the drain while the listeners still serve.
func TestManifestsShutdownBudget(t *testing.T) {
	m := readManifests(t)
	cfg, env := m.config(t)

	durations := map[string]time.Duration{}
	for _, name := range []string{"SERVICE_SHUTDOWN_DRAIN_DELAY", "SERVICE_SHUTDOWN_TIMEOUT"} {
		v, ok := env[name]
		if !ok {
			t.Fatalf("Deployment: set %s explicitly: the grace period depends on it", name)
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("Deployment: %s=%q: %v", name, v, err)
		}
		durations[name] = d
	}
	drain, timeout := durations["SERVICE_SHUTDOWN_DRAIN_DELAY"], durations["SERVICE_SHUTDOWN_TIMEOUT"]
	if drain != cfg.Health.DrainDelay || timeout != cfg.HTTP.ShutdownTimeout {
		t.Fatalf("the configuration loaded from the environment has drain delay %s and shutdown timeout %s, the environment says %s and %s", cfg.Health.DrainDelay, cfg.HTTP.ShutdownTimeout, drain, timeout)
	}
	if drain <= 0 {
		t.Fatal("Deployment: SERVICE_SHUTDOWN_DRAIN_DELAY must be positive: it keeps the listeners serving while the endpoints are updated")
	}

	var preStop time.Duration
	if lc := m.container.Lifecycle; lc != nil && lc.PreStop != nil {
		switch ps := lc.PreStop; {
		case ps.Exec != nil:
			t.Error("Deployment: a preStop exec hook cannot run: the distroless image has no shell or sleep; use preStop.sleep")
		case ps.HTTPGet != nil:
			t.Error("Deployment: a preStop httpGet would not delay SIGTERM by a known time; use preStop.sleep or the drain delay")
		case ps.Sleep != nil:
			preStop = time.Duration(ps.Sleep.Seconds) * time.Second
		}
	}

	grace := m.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil {
		t.Fatal("Deployment: terminationGracePeriodSeconds is not set (Kubernetes' default 30s is less than the stop takes)")
	}
	need := max(drain+timeout+stopMargin, cfg.StopTimeout) + preStop
	if got := time.Duration(*grace) * time.Second; got < need {
		t.Errorf("Deployment: terminationGracePeriodSeconds %s < drain delay %s + shutdown timeout %s + margin %s + preStop %s = %s: the kubelet's SIGKILL would cut the stop",
			got, drain, timeout, stopMargin, preStop, need)
	}

	// /readyz fails from SIGTERM on; the probe must see it before the
	// listeners close: at worst one period passes before the next probe,
	// and failureThreshold failures in a row are needed.
	if r := m.container.ReadinessProbe; r != nil {
		if notice := r.period() * time.Duration(r.failureThreshold()); notice >= drain {
			t.Errorf("Deployment: readinessProbe periodSeconds x failureThreshold = %s, not below the drain delay %s: the pod would stay ready after its listeners close", notice, drain)
		}
	}
}

// TestManifestsEnvironment: production, with auth from the Secret whose
// example has the same name and key, and only variables the service reads.
func TestManifestsEnvironment(t *testing.T) {
	m := readManifests(t)
	cfg, env := m.config(t)
	if env["SERVICE_ENV"] != config.Production || cfg.Env != config.Production {
		t.Errorf("Deployment: SERVICE_ENV=%q, want %s", env["SERVICE_ENV"], config.Production)
	}
	known := confignames.Service(t)
	for _, e := range m.container.Env {
		if strings.HasPrefix(e.Name, "SERVICE_") && !known[e.Name] {
			t.Errorf("Deployment: %s is no variable the service reads (see the modules' configuration sections and docs/CONFIGURATION.md)", e.Name)
		}
	}

	var refs int
	for _, e := range m.container.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		refs++
		ref := e.ValueFrom.SecretKeyRef
		_, inData := m.secret.Data[ref.Key]
		_, inStringData := m.secret.StringData[ref.Key]
		if ref.Name != m.secretObj.Metadata.Name || (!inData && !inStringData) {
			t.Errorf("Deployment: %s comes from secret %s key %s, which %s does not show", e.Name, ref.Name, ref.Key, secretExampleFile)
		}
	}
	if refs == 0 {
		t.Error("Deployment: no variable comes from a Secret; production needs bearer-token keys or mutual TLS")
	}

	// The example's placeholder must not make a pod that runs.
	for name, value := range m.secret.StringData {
		env := m.env(t, value)
		_, err := app.LoadConfig(config.Source{Lookup: config.MapLookup(env)})
		if err == nil {
			t.Errorf("%s: the placeholder of %s is accepted by the service: a copy applied as is would run with a published key", secretExampleFile, name)
		}
	}
}

// TestManifestsResourcesAndSecurity: resource requests, a memory limit, and
// a container that runs as the image's non-root user and can gain nothing.
func TestManifestsResourcesAndSecurity(t *testing.T) {
	m := readManifests(t)
	if r := m.deployment.Spec.Replicas; r == nil || *r < 2 {
		t.Errorf("Deployment: replicas %v, want at least 2", r)
	}
	res := m.container.Resources
	for _, name := range []string{"cpu", "memory"} {
		if res.Requests[name] == "" {
			t.Errorf("Deployment: no %s request", name)
		}
	}
	if res.Limits["memory"] == "" {
		t.Error("Deployment: no memory limit")
	}

	pod, c := m.deployment.Spec.Template.Spec.SecurityContext, m.container.SecurityContext
	// The container's settings win over the pod's.
	nonRoot, user := c.RunAsNonRoot, c.RunAsUser
	if nonRoot == nil {
		nonRoot = pod.RunAsNonRoot
	}
	if user == nil {
		user = pod.RunAsUser
	}
	if nonRoot == nil || !*nonRoot {
		t.Error("Deployment: runAsNonRoot is not true")
	}
	imageUser, _, _ := strings.Cut(strings.Join(dockerfileInstruction(t, "USER"), " "), ":")
	switch {
	case user == nil:
		t.Errorf("Deployment: no runAsUser, want the image's USER %s", imageUser)
	case strconv.FormatInt(*user, 10) != imageUser:
		t.Errorf("Deployment: runAsUser %d, want the image's USER %s", *user, imageUser)
	}
	if c.ReadOnlyRootFilesystem == nil || !*c.ReadOnlyRootFilesystem {
		t.Error("Deployment: the container's readOnlyRootFilesystem is not true")
	}
	if c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation {
		t.Error("Deployment: the container's allowPrivilegeEscalation is not false")
	}
	if !slices.Contains(c.Capabilities.Drop, "ALL") || len(c.Capabilities.Add) != 0 {
		t.Errorf("Deployment: capabilities %+v, want drop ALL and add none", c.Capabilities)
	}

	pdb := m.pdb.Spec
	if (pdb.MinAvailable == nil) == (pdb.MaxUnavailable == nil) {
		t.Fatalf("PodDisruptionBudget: set one of minAvailable and maxUnavailable, got %v and %v", pdb.MinAvailable, pdb.MaxUnavailable)
	}
	replicas := 1
	if m.deployment.Spec.Replicas != nil {
		replicas = *m.deployment.Spec.Replicas
	}
	// An integer, so that the test can tell whether evictions are possible
	// at all (a drain would wait forever) and leave a pod serving.
	for name, v := range map[string]any{"minAvailable": pdb.MinAvailable, "maxUnavailable": pdb.MaxUnavailable} {
		if v == nil {
			continue
		}
		n, ok := v.(int)
		if !ok || n < 1 || n >= replicas {
			t.Errorf("PodDisruptionBudget: %s %v, want an integer from 1 to replicas-1 (%d)", name, v, replicas-1)
		}
	}
}

// dockerfileInstruction returns the arguments of the final stage's last
// instruction called name (EXPOSE, USER) in the Dockerfile.
func dockerfileInstruction(t *testing.T, name string) []string {
	t.Helper()
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			args = nil // a new stage
		case name:
			args = fields[1:]
		}
	}
	if len(args) == 0 {
		t.Fatalf("%s: no %s in the final stage", dockerfile, name)
	}
	return args
}
