package charts_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// objects is a rendered manifest stream, parsed.
type objects []*unstructured.Unstructured

func parseObjects(manifest string) (objects, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var out objects
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("decode rendered manifest: %w", err)
		}
		// Integers as int64, the way the apiserver's unstructured objects hold them.
		var m map[string]any
		if err := utiljson.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("decode rendered object: %w", err)
		}
		if len(m) == 0 {
			continue // an empty document (`---` alone)
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// kinds counts objects per kind.
func (o objects) kinds() map[string]int {
	n := map[string]int{}
	for _, u := range o {
		n[u.GetKind()]++
	}
	return n
}

func (o objects) find(kind, name string) *unstructured.Unstructured {
	for _, u := range o {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	return nil
}

func (o objects) mustFind(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	u := o.find(kind, name)
	if u == nil {
		var have []string
		for _, u := range o {
			have = append(have, u.GetKind()+"/"+u.GetName())
		}
		t.Fatalf("no %s %q rendered; have %v", kind, name, have)
	}
	return u
}

// render runs `helm template` on the chart and parses the result.
func render(t *testing.T, args ...string) objects {
	t.Helper()
	out, err := helmOffline(t, append([]string{"template", "mto", chartDir, "--namespace", namespace}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parseObjects(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// field reads a nested field, failing the test when it is missing.
func field(t *testing.T, u *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, ok, err := unstructured.NestedFieldNoCopy(u.Object, path...)
	if err != nil || !ok {
		t.Fatalf("%s/%s: no field %s (err %v)", u.GetKind(), u.GetName(), strings.Join(path, "."), err)
	}
	return v
}

// container returns the first container of a Deployment.
func container(t *testing.T, d *unstructured.Unstructured) map[string]any {
	t.Helper()
	cs := field(t, d, "spec", "template", "spec", "containers").([]any)
	if len(cs) != 1 {
		t.Fatalf("%s: %d containers, want 1", d.GetName(), len(cs))
	}
	return cs[0].(map[string]any)
}

func nested(t *testing.T, m map[string]any, path ...string) any {
	t.Helper()
	v, ok, err := unstructured.NestedFieldNoCopy(m, path...)
	if err != nil || !ok {
		t.Fatalf("no field %s (err %v)", strings.Join(path, "."), err)
	}
	return v
}

// readYAMLFile parses one YAML document into a map.
func readYAMLFile(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var m map[string]any
	if err := utiljson.Unmarshal(j, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func chartAppVersion(t *testing.T) string {
	t.Helper()
	m := readYAMLFile(t, filepath.Join(chartDir, "Chart.yaml"))
	v, _ := m["appVersion"].(string)
	if v == "" {
		t.Fatal("Chart.yaml has no appVersion")
	}
	return v
}

// countDryRun counts the objects kubectl reports as accepted in a server dry run.
func countDryRun(out string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasSuffix(strings.TrimSpace(line), "(server dry run)") {
			n++
		}
	}
	return n
}

func toJSON(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(bytes.TrimSpace(b))
}
