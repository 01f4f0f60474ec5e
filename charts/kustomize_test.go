package charts_test

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// kustomize renders a kustomization with kubectl's built-in kustomize.
func kustomize(t *testing.T, dir string) (string, objects) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := run(ctx, nil, nil, kubectlBin, "kustomize", dir)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parseObjects(out)
	if err != nil {
		t.Fatal(err)
	}
	return out, objs
}

// config/default is the same install as the chart with default values, for
// kustomize users: everything in misp-trust-system, both Deployments, an
// identity with bindings for each, the CRDs from config/crd/bases.
func TestKustomizeDefault(t *testing.T) {
	manifest, objs := kustomize(t, filepath.Join("..", "config", "default"))

	if got := objs.kinds()["CustomResourceDefinition"]; got != 2 {
		t.Errorf("%d CRDs, want 2", got)
	}
	for _, u := range objs {
		switch u.GetKind() {
		case "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace":
		default:
			if u.GetNamespace() != namespace {
				t.Errorf("%s/%s in namespace %q, want %s", u.GetKind(), u.GetName(), u.GetNamespace(), namespace)
			}
		}
	}
	chart := render(t)
	sas := map[string]bool{}
	for _, u := range objs {
		if u.GetKind() == "ServiceAccount" {
			sas[u.GetName()] = true
		}
	}
	bound := map[string]bool{}
	for _, u := range objs {
		if u.GetKind() != "ClusterRoleBinding" && u.GetKind() != "RoleBinding" {
			continue
		}
		for _, s := range u.Object["subjects"].([]any) {
			s := s.(map[string]any)
			if s["kind"] == "ServiceAccount" && s["namespace"] == namespace {
				bound[s["name"].(string)+"/"+u.GetKind()] = true
			}
		}
	}
	for _, component := range []string{"controller", "curator"} {
		t.Run(component, func(t *testing.T) {
			d := objs.mustFind(t, "Deployment", "misp-trust-operator-"+component)
			c := container(t, d)
			if got := c["image"]; got != "ghcr.io/misptrust/misp-trust-operator:"+chartAppVersion(t) {
				t.Errorf("image = %v, want the chart's appVersion", got)
			}
			sa := field(t, d, "spec", "template", "spec", "serviceAccountName").(string)
			if !sas[sa] {
				t.Errorf("ServiceAccount %q of the %s is not in config/default", sa, component)
			}
			if !bound[sa+"/ClusterRoleBinding"] || !bound[sa+"/RoleBinding"] {
				t.Errorf("ServiceAccount %q: ClusterRoleBinding %v, leader election RoleBinding %v; want both",
					sa, bound[sa+"/ClusterRoleBinding"], bound[sa+"/RoleBinding"])
			}
			// Same pod spec as the chart's, but for names and labels.
			cd := chart.mustFind(t, "Deployment", "mto-misp-trust-operator-"+component)
			cc := container(t, cd)
			for _, k := range []string{"args", "ports", "livenessProbe", "readinessProbe", "resources", "securityContext", "volumeMounts", "env"} {
				if !reflect.DeepEqual(c[k], cc[k]) {
					t.Errorf("container %s differs from the chart's:\nkustomize: %s\nchart:     %s", k, toJSON(c[k]), toJSON(cc[k]))
				}
			}
			for _, k := range []string{"replicas", "strategy"} {
				if !reflect.DeepEqual(d.Object["spec"].(map[string]any)[k], cd.Object["spec"].(map[string]any)[k]) {
					t.Errorf("spec.%s differs from the chart's", k)
				}
			}
			for _, k := range []string{"securityContext", "volumes", "automountServiceAccountToken", "terminationGracePeriodSeconds", "enableServiceLinks"} {
				kp := field(t, d, "spec", "template", "spec").(map[string]any)[k]
				cp := field(t, cd, "spec", "template", "spec").(map[string]any)[k]
				if !reflect.DeepEqual(kp, cp) {
					t.Errorf("pod %s differs from the chart's:\nkustomize: %s\nchart:     %s", k, toJSON(kp), toJSON(cp))
				}
			}
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := shared.kubectl(ctx, []byte(manifest), "apply", "--dry-run=server", "--validate=strict", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if n := countDryRun(res); n != len(objs) {
		t.Fatalf("server accepted %d objects, rendered %d:\n%s", n, len(objs), res)
	}
	t.Logf("config/default: %d objects accepted by kube-apiserver (dry run)", len(objs))
}

// The trust-list layout the GitOps examples point at is valid for the API.
func TestKustomizeGitOpsExample(t *testing.T) {
	manifest, objs := kustomize(t, filepath.Join("..", "config", "gitops", "examples", "trust-lists"))
	if want := map[string]int{"MISPInstance": 1, "OrgTrustPolicy": 2}; !reflect.DeepEqual(objs.kinds(), want) {
		t.Fatalf("kinds = %v, want %v", objs.kinds(), want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := shared.kubectl(ctx, nil, "create", "namespace", "misp"); err != nil {
		t.Fatal(err)
	}
	res, err := shared.kubectl(ctx, []byte(manifest), "apply", "--dry-run=server", "--validate=strict", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if n := countDryRun(res); n != len(objs) {
		t.Fatalf("server accepted %d objects, rendered %d:\n%s", n, len(objs), res)
	}
	t.Logf("config/gitops/examples/trust-lists: %d objects accepted by kube-apiserver (dry run)", len(objs))
}
