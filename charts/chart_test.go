package charts_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var fullValues = filepath.Join(chartDir, "ci", "full-values.yaml")

// The API versions `helm template` should assume for the full render: the
// misptrust.io objects from values are only rendered once their API exists.
var fullTemplateArgs = []string{"-f", fullValues, "--api-versions", "misptrust.io/v1alpha1", "--api-versions", "monitoring.coreos.com/v1"}

func TestLint(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"default values", nil},
		{"full values", []string{"-f", fullValues}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helmOffline(t, append([]string{"lint", "--strict", chartDir}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
				t.Fatalf("unexpected lint output:\n%s", out)
			}
		})
	}
}

// values.schema.json is strict: a typo or a bad value fails the install with a
// message naming the key, instead of being silently ignored.
func TestSchemaRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		name, set, want string
	}{
		{"unknown top-level key", "replicaCount=2", "replicaCount"},
		{"unknown nested key", "curator.replica=3", "replica"},
		{"negative replicas", "curator.replicas=-1", "replicas"},
		{"bad pull policy", "image.pullPolicy=Sometimes", "pullPolicy"},
		{"bad digest", "image.digest=latest", "digest"},
		{"bad scrape interval", "metrics.serviceMonitor.interval=often", "interval"},
		{"port out of range", "ports.metrics=70000", "metrics"},
		{"policy without spec", "policies[0].name=high", "spec"},
		{"a watched namespace that is not a namespace name", "security.watchNamespaces={Team_A}", "watchNamespaces"},
		{"an allowed host with a scheme", "security.mispAllowedHosts={https://misp}", "mispAllowedHosts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helmOffline(t, "template", "mto", chartDir, "--set", tc.set)
			if err == nil {
				t.Fatalf("--set %s rendered; want a schema error", tc.set)
			}
			if !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("--set %s: want a schema error naming %q, got:\n%v", tc.set, tc.want, err)
			}
		})
	}
}

func TestDefaultRender(t *testing.T) {
	objs := render(t)
	want := map[string]int{
		"CustomResourceDefinition": 2, "ServiceAccount": 2, "ClusterRole": 2, "ClusterRoleBinding": 2,
		"Role": 2, "RoleBinding": 2, "Service": 2, "Deployment": 2,
		// Only the curator runs more than one replica by default.
		"PodDisruptionBudget": 1,
		// On by default (egress to DNS, the API server and MISP only).
		"NetworkPolicy": 2,
	}
	if got := objs.kinds(); !reflect.DeepEqual(got, want) {
		t.Fatalf("rendered kinds = %v, want %v", got, want)
	}
	image := "ghcr.io/misptrust/misp-trust-operator:" + chartAppVersion(t)
	for _, tc := range []struct {
		component string
		replicas  int64
	}{{"controller", 1}, {"curator", 2}} {
		t.Run(tc.component, func(t *testing.T) {
			d := objs.mustFind(t, "Deployment", "mto-misp-trust-operator-"+tc.component)
			if got := field(t, d, "spec", "replicas"); got != tc.replicas {
				t.Errorf("replicas = %v, want %d", got, tc.replicas)
			}
			c := container(t, d)
			if got := c["image"]; got != image {
				t.Errorf("image = %v, want %s (tag defaults to appVersion)", got, image)
			}
			if got, want := c["args"], []any{tc.component, "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081"}; !reflect.DeepEqual(got, want) {
				t.Errorf("args = %v, want %v", got, want)
			}
			sc := nested(t, c, "securityContext").(map[string]any)
			for k, v := range map[string]any{"runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false, "privileged": false} {
				if sc[k] != v {
					t.Errorf("securityContext.%s = %v, want %v", k, sc[k], v)
				}
			}
			if got := nested(t, sc, "capabilities", "drop"); !reflect.DeepEqual(got, []any{"ALL"}) {
				t.Errorf("capabilities.drop = %v, want [ALL]", got)
			}
			if got := nested(t, sc, "seccompProfile", "type"); got != "RuntimeDefault" {
				t.Errorf("container seccompProfile = %v", got)
			}
			if got := field(t, d, "spec", "template", "spec", "securityContext", "seccompProfile", "type"); got != "RuntimeDefault" {
				t.Errorf("pod seccompProfile = %v", got)
			}
			if got := field(t, d, "spec", "template", "spec", "securityContext", "runAsNonRoot"); got != true {
				t.Errorf("pod runAsNonRoot = %v", got)
			}
			for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
				if got := nested(t, c, probe, "httpGet", "path"); got != path {
					t.Errorf("%s path = %v, want %s", probe, got, path)
				}
				if got := nested(t, c, probe, "httpGet", "port"); got != "health" {
					t.Errorf("%s port = %v, want health", probe, got)
				}
			}
			ports := map[any]any{}
			for _, p := range nested(t, c, "ports").([]any) {
				ports[p.(map[string]any)["name"]] = p.(map[string]any)["containerPort"]
			}
			if want := map[any]any{"metrics": int64(8080), "health": int64(8081)}; !reflect.DeepEqual(ports, want) {
				t.Errorf("ports = %v, want %v", ports, want)
			}
			if _, ok := nested(t, c, "resources", "limits").(map[string]any)["memory"]; !ok {
				t.Error("no memory limit")
			}
			if got := field(t, d, "spec", "template", "spec", "serviceAccountName"); got != "mto-misp-trust-operator-"+tc.component {
				t.Errorf("serviceAccountName = %v", got)
			}
			svc := objs.mustFind(t, "Service", "mto-misp-trust-operator-"+tc.component+"-metrics")
			if got, want := field(t, svc, "spec", "selector"), field(t, d, "spec", "selector", "matchLabels"); !reflect.DeepEqual(got, want) {
				t.Errorf("metrics Service selects %v, Deployment pods are %v", got, want)
			}
		})
	}
	d := objs.mustFind(t, "Deployment", "mto-misp-trust-operator-curator")
	if _, ok := field(t, d, "spec", "template", "spec", "affinity").(map[string]any)["podAntiAffinity"]; !ok {
		t.Error("curator replicas are not spread over nodes by default")
	}
}

// The chart's CRD templates are generated from config/crd/bases; a stale copy
// would install an old schema.
func TestCRDsMatchConfig(t *testing.T) {
	objs := render(t)
	files, err := filepath.Glob(filepath.Join("..", "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v)", err)
	}
	for _, f := range files {
		src := readYAMLFile(t, f)
		name := src["metadata"].(map[string]any)["name"].(string)
		crd := objs.mustFind(t, "CustomResourceDefinition", name)
		if !reflect.DeepEqual(crd.Object["spec"], src["spec"]) {
			t.Errorf("%s: chart CRD spec differs from %s: run `make manifests`", name, f)
		}
		if got := crd.GetAnnotations()["helm.sh/resource-policy"]; got != "keep" {
			t.Errorf("%s: helm.sh/resource-policy = %q, want keep", name, got)
		}
	}
	if n := render(t, "--set", "crds.enabled=false").kinds()["CustomResourceDefinition"]; n != 0 {
		t.Errorf("crds.enabled=false rendered %d CRDs", n)
	}
	for _, crd := range render(t, "--set", "crds.keep=false") {
		if _, ok := crd.GetAnnotations()["helm.sh/resource-policy"]; ok {
			t.Errorf("crds.keep=false: %s still has the keep annotation", crd.GetName())
		}
	}
}

func TestRBACLeastPrivilege(t *testing.T) {
	objs := render(t)
	controller := rulesOf(t, objs.mustFind(t, "ClusterRole", "mto-misp-trust-operator-controller"))
	curator := rulesOf(t, objs.mustFind(t, "ClusterRole", "mto-misp-trust-operator-curator"))
	for _, tc := range []struct {
		name  string
		rules ruleSet
		perm  string
		want  bool
	}{
		{"controller reads policies", controller, "misptrust.io/orgtrustpolicies:watch", true},
		{"controller patches status", controller, "misptrust.io/orgtrustpolicies/status:patch", true},
		{"controller updates finalizers", controller, "misptrust.io/orgtrustpolicies/finalizers:update", true},
		{"controller reads secrets", controller, "/secrets:get", true},
		{"controller writes events", controller, "events.k8s.io/events:create", true},
		{"controller cannot update specs", controller, "misptrust.io/orgtrustpolicies:update", false},
		{"controller cannot patch instances", controller, "misptrust.io/mispinstances:patch", false},
		{"controller cannot list CRDs", controller, "apiextensions.k8s.io/customresourcedefinitions:list", false},
		{"controller cannot write secrets", controller, "/secrets:update", false},
		{"curator reads instances", curator, "misptrust.io/mispinstances:list", true},
		{"curator patches status", curator, "misptrust.io/mispinstances/status:patch", true},
		{"curator has no finalizers", curator, "misptrust.io/orgtrustpolicies/finalizers:update", false},
		{"curator cannot delete", curator, "misptrust.io/orgtrustpolicies:delete", false},
		{"curator cannot patch specs", curator, "misptrust.io/orgtrustpolicies:patch", false},
		{"curator cannot create secrets", curator, "/secrets:create", false},
	} {
		if got := tc.rules.allows(tc.perm); got != tc.want {
			t.Errorf("%s: allows(%s) = %v, want %v", tc.name, tc.perm, got, tc.want)
		}
	}
	for _, component := range []string{"controller", "curator"} {
		role := objs.mustFind(t, "Role", "mto-misp-trust-operator-"+component+"-leader-election")
		if role.GetNamespace() != namespace {
			t.Errorf("%s: leader election Role in %q, want the release namespace", component, role.GetNamespace())
		}
		rules := rulesOf(t, role)
		if !rules.allowsNamed("coordination.k8s.io/leases:update", "misp-trust-"+component) {
			t.Errorf("%s cannot update its Lease misp-trust-%s", component, component)
		}
		other := map[string]string{"controller": "curator", "curator": "controller"}[component]
		if rules.allowsNamed("coordination.k8s.io/leases:update", "misp-trust-"+other) {
			t.Errorf("%s may update the other component's Lease", component)
		}
	}
}

// The recommended install grants nothing in namespaces it does not watch: the
// rules are Roles there, and the only cluster-wide grant is the controller's
// read of the OrgTrustPolicy CRD.
func TestNamespaceScopedInstall(t *testing.T) {
	objs := render(t, "--set", "security.watchNamespaces={team-a,team-b}", "--set", "security.mispAllowedHosts={misp.misp.svc,*.cert.example}")
	kinds := objs.kinds()
	if kinds["ClusterRole"] != 1 || kinds["ClusterRoleBinding"] != 1 || kinds["Role"] != 2+4 || kinds["RoleBinding"] != 2+4 {
		t.Fatalf("kinds = %v: want the controller's CRD ClusterRole, leader election Roles and a Role per component and namespace", kinds)
	}
	cr := rulesOf(t, objs.mustFind(t, "ClusterRole", "mto-misp-trust-operator-controller"))
	if len(cr.perms) != 1 || !cr.allowsNamed("apiextensions.k8s.io/customresourcedefinitions:get", "orgtrustpolicies.misptrust.io") {
		t.Errorf("cluster-wide grants = %v, want only the OrgTrustPolicy CRD read", cr.perms)
	}
	for _, ns := range []string{"team-a", "team-b"} {
		for _, component := range []string{"controller", "curator"} {
			var role *unstructured.Unstructured
			for _, u := range objs {
				if u.GetKind() == "Role" && u.GetNamespace() == ns && u.GetName() == "mto-misp-trust-operator-"+component {
					role = u
				}
			}
			if role == nil {
				t.Fatalf("no Role for the %s in %s", component, ns)
			}
			rules := rulesOf(t, role)
			if !rules.allows("/secrets:get") || !rules.allows("misptrust.io/mispinstances/status:patch") || rules.allows("/secrets:update") {
				t.Errorf("%s in %s: %v", component, ns, rules.perms)
			}
		}
	}
	for _, component := range []string{"controller", "curator"} {
		args := fmt.Sprint(container(t, objs.mustFind(t, "Deployment", "mto-misp-trust-operator-"+component))["args"])
		if !strings.Contains(args, "--watch-namespaces=team-a,team-b") || !strings.Contains(args, "--misp-allowed-hosts=misp.misp.svc,*.cert.example") {
			t.Errorf("%s args %s", component, args)
		}
	}
}

// The chart grants each component exactly what config/rbac grants it (both
// ClusterRoles there are generated from the components' RBAC markers): no less,
// or the component fails at run time; no more, or it is not least privilege.
func TestRBACMatchesConfig(t *testing.T) {
	objs := render(t)
	for _, tc := range []struct {
		file, role string
	}{
		{filepath.Join("..", "config", "rbac", "role.yaml"), "mto-misp-trust-operator-controller"},
		{filepath.Join("..", "config", "rbac", "curator_role.yaml"), "mto-misp-trust-operator-curator"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			if _, err := os.Stat(tc.file); os.IsNotExist(err) {
				t.Skipf("%s does not exist yet: nothing to cross-check", tc.file)
			}
			b, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := parseObjects(string(b))
			if err != nil {
				t.Fatal(err)
			}
			var want *unstructured.Unstructured
			for _, u := range cfg {
				if u.GetKind() == "ClusterRole" {
					want = u
				}
			}
			if want == nil {
				t.Fatalf("%s holds no ClusterRole", tc.file)
			}
			got := rulesOf(t, objs.mustFind(t, "ClusterRole", tc.role))
			cfgRules := rulesOf(t, want)
			for perm, names := range cfgRules.perms {
				if !got.covers(perm, names) {
					t.Errorf("%s grants %s %v; the chart's %s does not", tc.file, perm, names, tc.role)
				}
			}
			for perm, names := range got.perms {
				if !cfgRules.covers(perm, names) {
					t.Errorf("the chart's %s grants %s %v; %s does not", tc.role, perm, names, tc.file)
				}
			}
		})
	}
}

func TestOptionalObjects(t *testing.T) {
	full := render(t, fullTemplateArgs...)
	want := map[string]int{
		"CustomResourceDefinition": 2, "ServiceAccount": 2, "ClusterRole": 2, "ClusterRoleBinding": 2,
		"Role": 2, "RoleBinding": 2, "Service": 2, "Deployment": 2, "PodDisruptionBudget": 2,
		"ServiceMonitor": 1, "NetworkPolicy": 2, "MISPInstance": 1, "OrgTrustPolicy": 2,
		"PrometheusRule": 1, "ConfigMap": 1,
	}
	if got := full.kinds(); !reflect.DeepEqual(got, want) {
		t.Fatalf("full render kinds = %v, want %v", got, want)
	}
	d := full.mustFind(t, "Deployment", "mto-controller")
	if got := container(t, d)["image"]; got != "registry.example.org/security/misp-trust-operator:0.1.0-rc.1" {
		t.Errorf("image = %v", got)
	}
	if got, want := container(t, d)["args"], []any{"controller", "--metrics-bind-address=:9090", "--health-probe-bind-address=:9091", "--max-concurrent-reconciles=4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("args = %v, want %v", got, want)
	}
	if got := field(t, d, "spec", "template", "spec", "serviceAccountName"); got != "misp-trust-controller" {
		t.Errorf("serviceAccountName = %v, want the one from values", got)
	}

	// Without the misptrust.io API (first install), no object of it is rendered.
	if n := render(t, "-f", fullValues).kinds()["MISPInstance"]; n != 0 {
		t.Errorf("MISPInstance rendered without the misptrust.io API: %d", n)
	}
	// The digest pins the image.
	digest := "sha256:" + strings.Repeat("ab", 32)
	d = render(t, "--set", "image.digest="+digest).mustFind(t, "Deployment", "mto-misp-trust-operator-curator")
	if got := container(t, d)["image"]; got != "ghcr.io/misptrust/misp-trust-operator@"+digest {
		t.Errorf("image with digest = %v", got)
	}

	// NetworkPolicy: the controller may reach MISP's REST API only, the curator
	// its ZeroMQ publisher too.
	portsOf := func(name string) map[int64]bool {
		np := full.mustFind(t, "NetworkPolicy", name)
		ports := map[int64]bool{}
		for _, rule := range field(t, np, "spec", "egress").([]any) {
			for _, p := range rule.(map[string]any)["ports"].([]any) {
				if n, ok := p.(map[string]any)["port"].(int64); ok {
					ports[n] = true
				}
			}
		}
		return ports
	}
	if got := portsOf("mto-controller"); got[50000] || !got[443] || !got[8443] || !got[53] || !got[6443] {
		t.Errorf("controller egress ports = %v, want DNS, API server and MISP REST, no ZeroMQ", got)
	}
	if got := portsOf("mto-curator"); !got[50000] || !got[443] {
		t.Errorf("curator egress ports = %v, want MISP REST and ZeroMQ", got)
	}
	np := full.mustFind(t, "NetworkPolicy", "mto-curator")
	if got := toJSON(field(t, np, "spec", "egress")); !strings.Contains(got, "cidr: 10.0.0.1/32") {
		t.Errorf("API server CIDR from values missing:\n%s", got)
	}
}

// Every rendered object, with default and with full values, is accepted by a
// real kube-apiserver (kubectl apply --dry-run=server, strict field validation).
func TestServerDryRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"default values", nil},
		{"full values", fullTemplateArgs},
		{"network policy with looked-up API server", []string{"--set", "networkPolicy.enabled=true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			out, err := helmOffline(t, append([]string{"template", "mto", chartDir, "--namespace", namespace}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := parseObjects(out)
			if err != nil {
				t.Fatal(err)
			}
			res, err := shared.kubectl(ctx, []byte(out), "apply", "--dry-run=server", "--validate=strict", "-f", "-")
			if err != nil {
				t.Fatal(err)
			}
			if n := countDryRun(res); n != len(objs) {
				t.Fatalf("server accepted %d objects, rendered %d:\n%s", n, len(objs), res)
			}
			t.Logf("%d objects accepted by kube-apiserver (dry run)", len(objs))
		})
	}
	// The check can fail: strict validation refuses a field the API does not know.
	t.Run("refuses an unknown field", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		d := render(t).mustFind(t, "Deployment", "mto-misp-trust-operator-curator")
		d.Object["spec"].(map[string]any)["replica"] = int64(2)
		b, err := d.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		_, err = shared.kubectl(ctx, b, "apply", "--dry-run=server", "--validate=strict", "-f", "-")
		if err == nil || !strings.Contains(err.Error(), `unknown field "spec.replica"`) {
			t.Fatalf("want the apiserver to refuse spec.replica, got %v", err)
		}
	})
}
