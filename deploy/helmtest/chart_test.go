package helmtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// helmVersion is the helm release the tests (and scripts/helm-check.sh) use; it
// builds with the Go version of go.mod.
const helmVersion = "v3.22.0"

const (
	chartDir  = "../../helm/skein"
	release   = "mq"
	namespace = "brokers"
)

// manifests is one rendering of the chart, decoded.
type manifests struct {
	statefulSets    []*appsv1.StatefulSet
	services        []*corev1.Service
	serviceAccounts []*corev1.ServiceAccount
	pdbs            []*policyv1.PodDisruptionBudget
	serviceMonitors []*serviceMonitor
}

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// (monitoring.coreos.com/v1) that the chart writes. It is a CRD, not in k8s.io/api,
// so it has its own struct here; decoding is as strict as for the built-in types,
// so a field the chart writes that this struct lacks fails the test: add it here
// only after checking it in the operator's API reference.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel          string `json:"jobLabel,omitempty"`
		NamespaceSelector struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector"`
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port              string          `json:"port"`
			Path              string          `json:"path,omitempty"`
			Scheme            string          `json:"scheme,omitempty"`
			Interval          string          `json:"interval,omitempty"`
			ScrapeTimeout     string          `json:"scrapeTimeout,omitempty"`
			Relabelings       []relabelConfig `json:"relabelings,omitempty"`
			MetricRelabelings []relabelConfig `json:"metricRelabelings,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// relabelConfig is the operator's RelabelConfig.
type relabelConfig struct {
	SourceLabels []string `json:"sourceLabels,omitempty"`
	Separator    *string  `json:"separator,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Modulus      uint64   `json:"modulus,omitempty"`
	Replacement  *string  `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error // why there is no helm binary
)

// helm returns the helm binary, or skips the test saying why there is none.
func helm(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() { helmPath, helmErr = findHelm() })
	if helmErr != nil {
		t.Skipf("SKIPPED: no helm %s binary: %v", helmVersion, helmErr)
	}
	return helmPath
}

func findHelm() (string, error) {
	if p := os.Getenv("SKEIN_HELM"); p != "" {
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for it: %w", err)
	}
	dir := filepath.Join(cache, "skein", "helm-"+helmVersion)
	bin := filepath.Join(dir, "helm")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if testing.Short() {
		return "", fmt.Errorf("not in %s, and -short does not build it (scripts/helm-check.sh does)", dir)
	}
	// Build into a private directory and rename, so concurrent runs never see half
	// a binary.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "helm.sh/helm/v3/cmd/helm@"+helmVersion)
	cmd.Dir = tmp // outside this module: go install pkg@version ignores go.mod anyway
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install helm.sh/helm/v3/cmd/helm@%s: %w\n%s", helmVersion, err, lastLines(out, 15))
	}
	if err := os.Rename(filepath.Join(tmp, "helm"), bin); err != nil {
		return "", err
	}
	return bin, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// template runs helm template with the given values file (if any) and --set
// arguments and returns its output.
func template(t *testing.T, valuesFile string, set ...string) ([]byte, error) {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", namespace}
	if valuesFile != "" {
		args = append(args, "--values", valuesFile)
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	// Find (and on first use build) helm before the clock starts: the build may
	// take minutes on a cold module cache, and must not eat the template's time.
	bin := helm(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decode splits helm's output into documents and decodes each one strictly into
// its API type.
func decode(t *testing.T, out []byte) *manifests {
	t.Helper()
	m := &manifests{}
	for i, doc := range docSep.Split(string(out), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
		strict := func(into any) {
			if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
				t.Fatalf("document %d (%s %s): strict decoding: %v\n%s", i, tm.APIVersion, tm.Kind, err, doc)
			}
		}
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 StatefulSet":
			o := &appsv1.StatefulSet{}
			strict(o)
			m.statefulSets = append(m.statefulSets, o)
		case "v1 Service":
			o := &corev1.Service{}
			strict(o)
			m.services = append(m.services, o)
		case "v1 ServiceAccount":
			o := &corev1.ServiceAccount{}
			strict(o)
			m.serviceAccounts = append(m.serviceAccounts, o)
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			strict(o)
			m.pdbs = append(m.pdbs, o)
		case "monitoring.coreos.com/v1 ServiceMonitor":
			o := &serviceMonitor{}
			strict(o)
			m.serviceMonitors = append(m.serviceMonitors, o)
		default:
			t.Fatalf("document %d: unexpected %q %q: teach deploy/helmtest to decode it\n%s", i, tm.APIVersion, tm.Kind, doc)
		}
	}
	return m
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// skeinFlags returns the flags `skein serve --help` lists, built from this
// repository.
var skeinFlags = sync.OnceValues(func() (map[string]bool, error) {
	dir, err := os.MkdirTemp("", "helmtest-skein-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "skein")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/skein-mq/skein/cmd/skein").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/skein: %w\n%s", err, out)
	}
	out, err := exec.Command(bin, "serve", "--help").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("skein serve --help: %w\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`--([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	return flags, nil
})

// want holds what one rendering must show.
type want struct {
	replicas        int32
	bootstrapExpect string
	maxVoters       string
	tls             bool
	persistence     bool
	storage         string
	pdb             bool
	serviceMonitor  bool
	antiAffinity    string // "soft", "hard" or ""
	serviceType     corev1.ServiceType
	httpOnService   bool
	serviceAccount  bool
	extraArgs       []string
}

func TestChartRenders(t *testing.T) {
	fullname := release + "-skein"
	headless := fullname + "-headless"
	tests := []struct {
		name   string
		values string
		set    []string
		want   want
	}{
		{
			name:   "defaults",
			values: "../../helm/skein/ci/default-values.yaml",
			want: want{replicas: 3, bootstrapExpect: "3", maxVoters: "3", persistence: true, storage: "1Gi", pdb: true,
				antiAffinity: "soft", serviceType: corev1.ServiceTypeClusterIP, httpOnService: true, serviceAccount: true},
		},
		{
			name: "five replicas, tls, service monitor (--set)",
			set: []string{"replicaCount=5", "tls.enabled=true", "tls.existingSecret=skein-tls",
				"metrics.serviceMonitor.enabled=true"},
			want: want{replicas: 5, bootstrapExpect: "5", maxVoters: "3", tls: true, persistence: true, storage: "1Gi", pdb: true,
				serviceMonitor: true, antiAffinity: "soft", serviceType: corev1.ServiceTypeClusterIP, httpOnService: true, serviceAccount: true},
		},
		{
			name:   "ha, tls, monitoring, credentials",
			values: "../../helm/skein/ci/ha-tls-monitoring-values.yaml",
			want: want{replicas: 5, bootstrapExpect: "5", maxVoters: "5", tls: true, persistence: true, storage: "10Gi", pdb: true,
				serviceMonitor: true, antiAffinity: "hard", serviceType: corev1.ServiceTypeLoadBalancer, httpOnService: true,
				serviceAccount: true, extraArgs: []string{"--max-connections=100000", "--max-queued-messages=5000"}},
		},
		{
			name:   "single replica without persistence",
			values: "../../helm/skein/ci/single-ephemeral-values.yaml",
			want:   want{replicas: 1, bootstrapExpect: "1", maxVoters: "3", serviceType: corev1.ServiceTypeNodePort},
		},
		{
			name: "seven replicas: every pod waits for all of them, five voters",
			set:  []string{"replicaCount=7", "cluster.maxVoters=5"},
			want: want{replicas: 7, bootstrapExpect: "7", maxVoters: "5", persistence: true, storage: "1Gi", pdb: true,
				antiAffinity: "soft", serviceType: corev1.ServiceTypeClusterIP, httpOnService: true, serviceAccount: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := template(t, tc.values, tc.set...)
			if err != nil {
				t.Fatal(err)
			}
			m := decode(t, out)
			checkChart(t, m, tc.want, fullname, headless)
		})
	}
}

func checkChart(t *testing.T, m *manifests, w want, fullname, headless string) {
	t.Helper()
	if len(m.statefulSets) != 1 {
		t.Fatalf("want 1 StatefulSet, got %d", len(m.statefulSets))
	}
	sts := m.statefulSets[0]
	checkMeta(t, "StatefulSet", sts.ObjectMeta)
	spec := sts.Spec
	pod := spec.Template.Spec
	podLabels := labels.Set(spec.Template.Labels)

	// Shape of the StatefulSet.
	if spec.Replicas == nil || *spec.Replicas != w.replicas {
		t.Errorf("replicas = %v, want %d", spec.Replicas, w.replicas)
	}
	if spec.ServiceName != headless {
		t.Errorf("serviceName = %q, want the headless service %q", spec.ServiceName, headless)
	}
	if spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy = %q, want Parallel (pods are ready only once the cluster has formed)", spec.PodManagementPolicy)
	}
	sel, err := metav1.LabelSelectorAsSelector(spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(podLabels) {
		t.Errorf("selector %v does not select the pod labels %v (err %v)", spec.Selector, podLabels, err)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want 1 container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image == "" || strings.HasSuffix(c.Image, ":") {
		t.Errorf("image %q has no tag", c.Image)
	}

	// Arguments: node name, advertised pod IP, join address, bootstrap size.
	if len(c.Args) == 0 || c.Args[0] != "serve" || len(c.Command) != 0 {
		t.Fatalf("command %q args %q: want the image's entrypoint with args [serve ...]", c.Command, c.Args)
	}
	join := fmt.Sprintf("--join=%s.%s.svc.cluster.local:7946", headless, namespace)
	for _, a := range []string{
		"--node-name=$(POD_NAME)",
		"--advertise-addr=$(POD_IP)",
		join,
		"--bootstrap-expect=" + w.bootstrapExpect,
		"--max-voters=" + w.maxVoters,
		"--data-dir=/data",
		"--http-addr=:18083",
		"--gossip-addr=:7946",
		"--peer-addr=:7947",
		"--forward-timeout=5s",
		"--peer-spool-max-messages=100000",
		"--peer-spool-max-bytes=268435456",
		"--tombstone-retention=24h",
	} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("args lack %q: %q", a, c.Args)
		}
	}
	for _, a := range w.extraArgs {
		if !slices.Contains(c.Args, a) {
			t.Errorf("args lack the extra argument %q: %q", a, c.Args)
		}
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	fieldRef := func(name, path string) {
		e, ok := env[name]
		if !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != path {
			t.Errorf("env %s: want the downward API field %s, got %+v", name, path, e)
		}
	}
	fieldRef("POD_NAME", "metadata.name")
	fieldRef("POD_IP", "status.podIP")
	// Kubernetes expands $(VAR) only for variables defined in env; anything else
	// would reach the broker literally.
	for _, a := range c.Args {
		for _, ref := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(a, -1) {
			if _, ok := env[ref[1]]; !ok {
				t.Errorf("arg %q refers to $(%s), which env does not define", a, ref[1])
			}
		}
	}
	checkFlagsExist(t, c.Args)

	// Ports and probes.
	ports := map[string]corev1.ContainerPort{}
	for _, p := range c.Ports {
		if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
			t.Errorf("container port name %q: %v", p.Name, errs)
		}
		ports[p.Name] = p
	}
	wantPorts := map[string]struct {
		port  int32
		proto corev1.Protocol
	}{
		"mqtt": {1883, corev1.ProtocolTCP}, "ws": {8083, corev1.ProtocolTCP}, "http": {18083, corev1.ProtocolTCP},
		"gossip": {7946, corev1.ProtocolTCP}, "gossip-udp": {7946, corev1.ProtocolUDP}, "peer": {7947, corev1.ProtocolTCP},
	}
	if w.tls {
		wantPorts["mqtts"] = struct {
			port  int32
			proto corev1.Protocol
		}{8883, corev1.ProtocolTCP}
		wantPorts["wss"] = struct {
			port  int32
			proto corev1.Protocol
		}{8084, corev1.ProtocolTCP}
	}
	for name, wp := range wantPorts {
		if p, ok := ports[name]; !ok || p.ContainerPort != wp.port || p.Protocol != wp.proto {
			t.Errorf("container port %s = %+v, want %d/%s", name, p, wp.port, wp.proto)
		}
	}
	if len(ports) != len(wantPorts) {
		t.Errorf("container ports %v, want exactly %v", c.Ports, wantPorts)
	}
	probe := func(what string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: want an HTTP GET, got %+v", what, p)
			return
		}
		if p.HTTPGet.Path != path || resolvePort(p.HTTPGet.Port, ports) != 18083 {
			t.Errorf("%s probe: GET %s on port %s, want %s on 18083", what, p.HTTPGet.Path, p.HTTPGet.Port.String(), path)
		}
	}
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("startup", c.StartupProbe, "/healthz")

	// Data volume: a claim per pod from volumeClaimTemplates, or an emptyDir.
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.Name] = vm.MountPath
	}
	if mounts["data"] != "/data" {
		t.Errorf("volume mounts %v: want data on /data", c.VolumeMounts)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	for name := range mounts {
		if _, ok := volumes[name]; !ok && !(name == "data" && w.persistence) {
			t.Errorf("volume mount %q has no volume", name)
		}
	}
	if w.persistence {
		if len(spec.VolumeClaimTemplates) != 1 || spec.VolumeClaimTemplates[0].Name != "data" {
			t.Fatalf("volumeClaimTemplates = %+v, want one named data", spec.VolumeClaimTemplates)
		}
		if _, ok := volumes["data"]; ok {
			t.Errorf("a pod volume named data would shadow the claim template")
		}
		pvc := spec.VolumeClaimTemplates[0].Spec
		if got := pvc.Resources.Requests.Storage().String(); got != w.storage {
			t.Errorf("claim size %s, want %s", got, w.storage)
		}
		if !slices.Contains(pvc.AccessModes, corev1.ReadWriteOnce) {
			t.Errorf("claim access modes %v, want ReadWriteOnce", pvc.AccessModes)
		}
	} else {
		if len(spec.VolumeClaimTemplates) != 0 {
			t.Errorf("volumeClaimTemplates without persistence: %+v", spec.VolumeClaimTemplates)
		}
		if v, ok := volumes["data"]; !ok || v.EmptyDir == nil {
			t.Errorf("data volume %+v, want an emptyDir", v)
		}
	}

	// TLS: the secret's files, and the flags that use them.
	if w.tls {
		v, ok := volumes["tls"]
		if !ok || v.Secret == nil || v.Secret.SecretName == "" || mounts["tls"] != "/etc/skein/tls" {
			t.Errorf("tls volume %+v mounted at %q, want a secret at /etc/skein/tls", v, mounts["tls"])
		}
		for _, a := range []string{"--tls-cert=/etc/skein/tls/tls.crt", "--tls-key=/etc/skein/tls/tls.key", "--mqtts-addr=:8883", "--wss-addr=:8084"} {
			if !slices.Contains(c.Args, a) {
				t.Errorf("args lack %q", a)
			}
		}
	} else if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--tls-") }) {
		t.Errorf("tls flags without tls: %q", c.Args)
	}

	// Non-root.
	psc, csc := pod.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 || psc.FSGroup == nil {
		t.Errorf("pod securityContext %+v: want runAsNonRoot, a non-zero runAsUser and an fsGroup", psc)
	}
	if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
		csc.RunAsNonRoot == nil || !*csc.RunAsNonRoot || (csc.RunAsUser != nil && *csc.RunAsUser == 0) ||
		csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") {
		t.Errorf("container securityContext %+v: want non-root, no privilege escalation, all capabilities dropped", csc)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want memory requests and limits", c.Resources)
	}

	// Anti-affinity between the broker pods.
	var aa *corev1.PodAntiAffinity
	if pod.Affinity != nil {
		aa = pod.Affinity.PodAntiAffinity
	}
	var terms []corev1.PodAffinityTerm
	switch w.antiAffinity {
	case "soft":
		if aa == nil || len(aa.PreferredDuringSchedulingIgnoredDuringExecution) == 0 || len(aa.RequiredDuringSchedulingIgnoredDuringExecution) != 0 {
			t.Fatalf("anti-affinity %+v: want preferred only", aa)
		}
		for _, p := range aa.PreferredDuringSchedulingIgnoredDuringExecution {
			terms = append(terms, p.PodAffinityTerm)
		}
	case "hard":
		if aa == nil || len(aa.RequiredDuringSchedulingIgnoredDuringExecution) == 0 {
			t.Fatalf("anti-affinity %+v: want required", aa)
		}
		terms = aa.RequiredDuringSchedulingIgnoredDuringExecution
	default:
		if aa != nil {
			t.Errorf("anti-affinity %+v, want none", aa)
		}
	}
	for _, term := range terms {
		s, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
		if err != nil || s.Empty() || !s.Matches(podLabels) || term.TopologyKey != "kubernetes.io/hostname" {
			t.Errorf("anti-affinity term %+v does not keep broker pods on different nodes", term)
		}
	}
	for _, tsc := range pod.TopologySpreadConstraints {
		s, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
		if err != nil || s.Empty() || !s.Matches(podLabels) {
			t.Errorf("topology spread %+v does not select the broker pods", tsc)
		}
	}

	// Services.
	svcs := map[string]*corev1.Service{}
	for _, s := range m.services {
		checkMeta(t, "Service", s.ObjectMeta)
		if errs := validation.IsDNS1035Label(s.Name); len(errs) > 0 {
			t.Errorf("service name %q: %v", s.Name, errs)
		}
		svcs[s.Name] = s
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) || len(s.Spec.Selector) == 0 {
			t.Errorf("service %s selector %v does not select the pods", s.Name, s.Spec.Selector)
		}
		for _, p := range s.Spec.Ports {
			cp, ok := ports[p.TargetPort.String()]
			if p.TargetPort.Type != intstr.String || !ok || cp.Protocol != p.Protocol {
				t.Errorf("service %s port %s: target %s/%s is not a container port", s.Name, p.Name, p.TargetPort.String(), p.Protocol)
			}
		}
	}
	if len(svcs) != 2 {
		t.Fatalf("services %v, want the client and the headless one", keys(svcs))
	}
	hs := svcs[headless]
	if hs == nil {
		t.Fatalf("no headless service %q", headless)
	}
	if hs.Spec.ClusterIP != corev1.ClusterIPNone || !hs.Spec.PublishNotReadyAddresses {
		t.Errorf("headless service: clusterIP %q publishNotReadyAddresses %v, want None and true", hs.Spec.ClusterIP, hs.Spec.PublishNotReadyAddresses)
	}
	checkServicePorts(t, hs, []string{"7946/TCP", "7946/UDP", "7947/TCP", "18083/TCP"})
	cs := svcs[fullname]
	if cs == nil {
		t.Fatalf("no client service %q", fullname)
	}
	if cs.Spec.Type != w.serviceType {
		t.Errorf("client service type %q, want %q", cs.Spec.Type, w.serviceType)
	}
	clientPorts := []string{"1883/TCP", "8083/TCP"}
	if w.httpOnService {
		clientPorts = append(clientPorts, "18083/TCP")
	}
	if w.tls {
		clientPorts = append(clientPorts, "8883/TCP", "8084/TCP")
	}
	checkServicePorts(t, cs, clientPorts)

	// ServiceAccount.
	if w.serviceAccount {
		if len(m.serviceAccounts) != 1 || m.serviceAccounts[0].Name != pod.ServiceAccountName {
			t.Errorf("service accounts %v, want one named %q", m.serviceAccounts, pod.ServiceAccountName)
		}
	} else if len(m.serviceAccounts) != 0 || pod.ServiceAccountName != "default" {
		t.Errorf("service account %q (%d created), want default and none created", pod.ServiceAccountName, len(m.serviceAccounts))
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("automountServiceAccountToken = %v, want false", pod.AutomountServiceAccountToken)
	}

	// PodDisruptionBudget.
	if w.pdb {
		if len(m.pdbs) != 1 {
			t.Fatalf("want one PodDisruptionBudget, got %d", len(m.pdbs))
		}
		pdb := m.pdbs[0]
		checkMeta(t, "PodDisruptionBudget", pdb.ObjectMeta)
		s, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || s.Empty() || !s.Matches(podLabels) {
			t.Errorf("PodDisruptionBudget selector %v does not select the pods", pdb.Spec.Selector)
		}
		if (pdb.Spec.MaxUnavailable == nil) == (pdb.Spec.MinAvailable == nil) {
			t.Errorf("PodDisruptionBudget: want exactly one of maxUnavailable and minAvailable, got %+v", pdb.Spec)
		}
	} else if len(m.pdbs) != 0 {
		t.Errorf("PodDisruptionBudget rendered while disabled")
	}

	// ServiceMonitor: the headless service's http port, every pod.
	if w.serviceMonitor {
		if len(m.serviceMonitors) != 1 {
			t.Fatalf("want one ServiceMonitor, got %d", len(m.serviceMonitors))
		}
		sm := m.serviceMonitors[0]
		checkMeta(t, "ServiceMonitor", sm.ObjectMeta)
		s, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil || !s.Matches(labels.Set(hs.Labels)) || s.Matches(labels.Set(cs.Labels)) {
			t.Errorf("ServiceMonitor selector %v: want the headless service only", sm.Spec.Selector)
		}
		if !slices.Contains(sm.Spec.NamespaceSelector.MatchNames, namespace) {
			t.Errorf("ServiceMonitor namespaces %v, want %s", sm.Spec.NamespaceSelector.MatchNames, namespace)
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "http" || sm.Spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoints %+v, want port http path /metrics", sm.Spec.Endpoints)
		}
	} else if len(m.serviceMonitors) != 0 {
		t.Errorf("ServiceMonitor rendered while disabled")
	}
}

func checkMeta(t *testing.T, kind string, om metav1.ObjectMeta) {
	t.Helper()
	if errs := validation.IsDNS1123Subdomain(om.Name); len(errs) > 0 {
		t.Errorf("%s name %q: %v", kind, om.Name, errs)
	}
	if om.Namespace != namespace {
		t.Errorf("%s %s namespace %q, want %q", kind, om.Name, om.Namespace, namespace)
	}
	for k, v := range om.Labels {
		if errs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(errs) > 0 {
			t.Errorf("%s %s label %s=%s: %v", kind, om.Name, k, v, errs)
		}
	}
}

func checkServicePorts(t *testing.T, s *corev1.Service, want []string) {
	t.Helper()
	var got []string
	for _, p := range s.Spec.Ports {
		got = append(got, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
	}
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("service %s ports %v, want %v", s.Name, got, want)
	}
}

func resolvePort(p intstr.IntOrString, named map[string]corev1.ContainerPort) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	return named[p.StrVal].ContainerPort
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// checkFlagsExist fails for a --flag in args that `skein serve` does not have.
func checkFlagsExist(t *testing.T, args []string) {
	t.Helper()
	flags, err := skeinFlags()
	if err != nil {
		t.Errorf("cannot list skein serve's flags: %v", err)
		return
	}
	for _, a := range args[1:] {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !flags[name] {
			t.Errorf("arg %q is not a flag of skein serve", a)
		}
	}
}

func TestChartRefusesBadValues(t *testing.T) {
	tests := []struct {
		name string
		set  []string
		want string
	}{
		{"tls without a secret", []string{"tls.enabled=true"}, "tls.enabled needs tls.existingSecret"},
		{"client certificates without a CA", []string{"tls.enabled=true", "tls.existingSecret=x", "tls.requireClientCert=true"}, "tls.requireClientCert needs tls.caKey"},
		{"four voters", []string{"cluster.maxVoters=4"}, "cluster.maxVoters must be 1, 3 or 5"},
		{"no replicas", []string{"replicaCount=0"}, "replicaCount must be at least 1"},
		{"unknown anti-affinity preset", []string{"podAntiAffinity=sometimes"}, "podAntiAffinity must be soft, hard or empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := template(t, "", tc.set...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template --set %s: err = %v, want one saying %q", strings.Join(tc.set, ","), err, tc.want)
			}
		})
	}
}

// TestCIValuesCovered keeps the values files of helm/skein/ci in TestChartRenders.
func TestCIValuesCovered(t *testing.T) {
	files, err := filepath.Glob("../../helm/skein/ci/*-values.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no values files in helm/skein/ci (err %v)", err)
	}
	src, err := os.ReadFile("chart_test.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !bytes.Contains(src, []byte(`"`+filepath.ToSlash(f)+`"`)) {
			t.Errorf("%s is not rendered by TestChartRenders", f)
		}
	}
}
