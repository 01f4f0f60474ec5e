package v1alpha1_test

import (
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// kubebuilderProject is the part of kubebuilder's PROJECT file (version 3) that
// names the scaffold and its kinds.
type kubebuilderProject struct {
	Version     string   `json:"version"`
	Domain      string   `json:"domain"`
	ProjectName string   `json:"projectName"`
	Repo        string   `json:"repo"`
	Layout      []string `json:"layout"`
	Resources   []struct {
		API *struct {
			CRDVersion string `json:"crdVersion"`
			Namespaced bool   `json:"namespaced"`
		} `json:"api"`
		Controller bool   `json:"controller"`
		Domain     string `json:"domain"`
		Group      string `json:"group"`
		Kind       string `json:"kind"`
		Path       string `json:"path"`
		Version    string `json:"version"`
	} `json:"resources"`
}

// TestProjectFileNamesEveryKind keeps the top-level PROJECT file true: the
// kinds it lists are exactly the kinds api/v1alpha1 registers, under this
// package's group and version.
func TestProjectFileNamesEveryKind(t *testing.T) {
	raw, err := os.ReadFile("../../PROJECT")
	if err != nil {
		t.Fatalf("read PROJECT: %v", err)
	}
	var p kubebuilderProject
	if err := yaml.UnmarshalStrict(raw, &p); err != nil {
		t.Fatalf("PROJECT is not a kubebuilder project file: %v", err)
	}
	if p.Version != "3" || p.ProjectName != "misp-trust-operator" || p.Repo != "github.com/misptrust/misp-trust-operator" {
		t.Errorf("PROJECT header: version %q, projectName %q, repo %q", p.Version, p.ProjectName, p.Repo)
	}

	scheme, err := v1alpha1.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	var registered []string
	for kind := range scheme.KnownTypes(v1alpha1.GroupVersion) {
		if strings.HasSuffix(kind, "List") || isMetaKind(kind) {
			continue
		}
		registered = append(registered, kind)
	}
	sort.Strings(registered)

	var listed []string
	for _, r := range p.Resources {
		listed = append(listed, r.Kind)
		if got := r.Group + "." + r.Domain; got != v1alpha1.GroupVersion.Group {
			t.Errorf("PROJECT %s: group %q, want %q", r.Kind, got, v1alpha1.GroupVersion.Group)
		}
		if r.Domain != p.Domain {
			t.Errorf("PROJECT %s: domain %q, project domain %q", r.Kind, r.Domain, p.Domain)
		}
		if r.Version != v1alpha1.GroupVersion.Version {
			t.Errorf("PROJECT %s: version %q, want %q", r.Kind, r.Version, v1alpha1.GroupVersion.Version)
		}
		if r.Path != p.Repo+"/api/"+r.Version {
			t.Errorf("PROJECT %s: path %q", r.Kind, r.Path)
		}
		if r.API == nil || r.API.CRDVersion != "v1" || !r.API.Namespaced {
			t.Errorf("PROJECT %s: want a namespaced v1 CRD", r.Kind)
		}
		if !r.Controller {
			t.Errorf("PROJECT %s: controller: false, but controllers/ reconciles every kind", r.Kind)
		}
	}
	sort.Strings(listed)
	if !reflect.DeepEqual(listed, registered) {
		t.Errorf("PROJECT lists kinds %v; api/v1alpha1 registers %v", listed, registered)
	}
}

// isMetaKind reports the option kinds the scheme registers with every group
// version (ListOptions, GetOptions, WatchEvent...), which are not API kinds.
func isMetaKind(kind string) bool {
	return strings.HasSuffix(kind, "Options") || kind == "WatchEvent" || kind == "Status"
}
