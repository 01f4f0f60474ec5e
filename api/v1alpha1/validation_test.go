package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

func validPolicy() map[string]any {
	return map[string]any{
		"apiVersion": "misptrust.io/v1alpha1",
		"kind":       "OrgTrustPolicy",
		"metadata":   map[string]any{"name": "high", "namespace": "default"},
		"spec": map[string]any{
			"instanceRef":       map[string]any{"name": "misp-prod"},
			"sourceReliability": "a",
			"publish":           true,
			"organisations": []any{
				map[string]any{"uuid": "5cf66e53-b5f8-43e7-be9a-49880a3b4631", "name": "CIRCL"},
			},
		},
	}
}

func validInstance() map[string]any {
	return map[string]any{
		"apiVersion": "misptrust.io/v1alpha1",
		"kind":       "MISPInstance",
		"metadata":   map[string]any{"name": "misp-prod", "namespace": "default"},
		"spec": map[string]any{
			"url":             "https://misp.misp.svc",
			"apiKeySecretRef": map[string]any{"name": "misp-api"},
			"zeroMQ":          map[string]any{"endpoint": "tcp://misp-zmq.misp.svc:50000"},
		},
	}
}

func orgs(n int, uuidOf func(i int) string) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"uuid": uuidOf(i), "name": strings.Repeat("n", 128)}
	}
	return out
}

func seqUUID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// setPath sets a value at a dotted path below the object, creating maps.
func setPath(obj map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	m := obj
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	if v == nil {
		delete(m, parts[len(parts)-1])
		return
	}
	m[parts[len(parts)-1]] = v
}

func dryRunCreate(ctx context.Context, obj map[string]any) error {
	u := &unstructured.Unstructured{Object: obj}
	return k8sClient.Create(ctx, u, client.DryRunAll)
}

// Each invalid object must be refused by the apiserver with the message a
// user reads in `kubectl apply` output.
func TestInvalidObjectsAreRejectedWithAClearMessage(t *testing.T) {
	type mutation struct {
		path  string
		value any // nil deletes the field
	}
	cases := []struct {
		name    string
		base    func() map[string]any
		muts    []mutation
		wantMsg []string
	}{
		{"a malformed organisation UUID", validPolicy, []mutation{{"spec.organisations", []any{map[string]any{"uuid": "5cf66e53-b5f8-43e7-be9a-49880a3b463"}}}},
			[]string{`spec.organisations[0].uuid`, `should be at least 36 chars long`}},
		{"a UUID with a non-hex character", validPolicy, []mutation{{"spec.organisations", []any{map[string]any{"uuid": "5cf66e53-b5f8-43e7-be9a-49880a3b463z"}}}},
			[]string{`spec.organisations[0].uuid`, `should match '^[0-9a-fA-F]{8}-`}},
		{"the same UUID twice", validPolicy, []mutation{{"spec.organisations", []any{
			map[string]any{"uuid": "5cf66e53-b5f8-43e7-be9a-49880a3b4631", "name": "CIRCL"},
			map[string]any{"uuid": "5cf66e53-b5f8-43e7-be9a-49880a3b4631", "name": "CIRCL again"}}}},
			[]string{`spec.organisations[1]: Duplicate value`, `5cf66e53-b5f8-43e7-be9a-49880a3b4631`}},
		{"the same UUID twice in different case", validPolicy, []mutation{{"spec.organisations", []any{
			map[string]any{"uuid": "5cf66e53-b5f8-43e7-be9a-49880a3b4631"},
			map[string]any{"uuid": "5CF66E53-B5F8-43E7-BE9A-49880A3B4631"}}}},
			[]string{`spec.organisations`, `organisation UUIDs must be unique (ignoring case)`}},
		{"an unknown source reliability grade", validPolicy, []mutation{{"spec.sourceReliability", "h"}},
			[]string{`spec.sourceReliability: Unsupported value: "h": supported values: "a", "b", "c", "d", "e", "f", "g"`}},
		{"an upper-case grade", validPolicy, []mutation{{"spec.sourceReliability", "A"}},
			[]string{`spec.sourceReliability: Unsupported value: "A"`}},
		{"no source reliability", validPolicy, []mutation{{"spec.sourceReliability", nil}},
			[]string{`spec.sourceReliability: Required value`}},
		{"an unknown information credibility", validPolicy, []mutation{{"spec.informationCredibility", "7"}},
			[]string{`spec.informationCredibility: Unsupported value: "7": supported values: "1", "2", "3", "4", "5", "6"`}},
		{"no instanceRef", validPolicy, []mutation{{"spec.instanceRef", nil}},
			[]string{`spec.instanceRef: Required value`}},
		{"an instanceRef without a name", validPolicy, []mutation{{"spec.instanceRef", map[string]any{"name": ""}}},
			[]string{`spec.instanceRef.name`, `should be at least 1 chars long`}},
		{"more organisations than fit inline", validPolicy, []mutation{{"spec.organisations", orgs(501, seqUUID)}},
			[]string{`spec.organisations: Too many: 501: must have at most 500 items`}},
		{"a priority above the bound", validPolicy, []mutation{{"spec.priority", 1001}},
			[]string{`spec.priority: Invalid value: 1001: spec.priority in body should be less than or equal to 1000`}},
		{"a priority below the bound", validPolicy, []mutation{{"spec.priority", -1001}},
			[]string{`spec.priority: Invalid value: -1001: spec.priority in body should be greater than or equal to -1000`}},
		{"an unknown deletion policy", validPolicy, []mutation{{"spec.deletionPolicy", "Orphan"}},
			[]string{`spec.deletionPolicy: Unsupported value: "Orphan": supported values: "Retain", "Delete"`}},
		{"an organisation name with a line break (it would end the warninglist entry)", validPolicy, []mutation{{"spec.organisations", []any{
			map[string]any{"uuid": "5cf66e53-b5f8-43e7-be9a-49880a3b4631", "name": "CIRCL\nx"}}}},
			[]string{`spec.organisations[0].name`, `should match`}},
		{"an extra tag with a line break", validPolicy, []mutation{{"spec.extraTags", []any{"tlp:green\ntlp:red"}}},
			[]string{`spec.extraTags[0]`, `should match`}},
		{"an extra tag setting the grade", validPolicy, []mutation{{"spec.extraTags", []any{`admiralty-scale:source-reliability="a"`}}},
			[]string{`extraTags may not set the grade, the credibility or the workflow state`}},
		{"an extra tag setting the workflow state", validPolicy, []mutation{{"spec.extraTags", []any{`workflow:state="complete"`}}},
			[]string{`extraTags may not set the grade`}},
		{"a plain http URL without allowInsecureHTTP", validInstance, []mutation{{"spec.url", "http://misp.misp.svc"}},
			[]string{`an http:// url sends the API key unencrypted`}},
		{"a 1ms catch-up interval (a hot loop)", validInstance, []mutation{{"spec.curation.catchUp.interval", "1ms"}},
			[]string{`catchUp.interval must be between 1s and 24h`}},
		{"a catch-up look-back of a year", validInstance, []mutation{{"spec.curation.catchUp.lookback", "8760h"}},
			[]string{`catchUp.lookback must be between 1m and 720h`}},
		{"a push debounce of an hour", validInstance, []mutation{{"spec.curation.pushDebounce", "1h"}},
			[]string{`pushDebounce must be between 0s and 5m`}},
		{"a negative push debounce", validInstance, []mutation{{"spec.curation.pushDebounce", "-1s"}},
			[]string{`pushDebounce must be between 0s and 5m`}},
		{"an API timeout of 1ms", validInstance, []mutation{{"spec.api.timeout", "1ms"}},
			[]string{`api.timeout must be between 1s and 5m`}},
		{"a value prefix with a space", validPolicy, []mutation{{"spec.valuePrefix", "org uuid:"}},
			[]string{`spec.valuePrefix`, `should match`}},
		{"the sharer prefix as creator value prefix (entries would be confused)", validPolicy, []mutation{{"spec.valuePrefix", "sharer:"}},
			[]string{`spec.valuePrefix`, `valuePrefix "sharer:" is reserved for sharingOrganisations entries`}},
		{"a sharing organisation listed twice in different case", validPolicy, []mutation{{"spec.sharingOrganisations", []any{
			map[string]any{"uuid": "5cf66e53-b5f8-43e7-be9a-49880a3b4631"}, map[string]any{"uuid": "5CF66E53-B5F8-43E7-BE9A-49880A3B4631"}}}},
			[]string{`sharing organisation UUIDs must be unique (ignoring case)`}},
		{"a sharer server that is not a local server id", validPolicy, []mutation{{"spec.sharingOrganisations", []any{
			map[string]any{"uuid": "5cf66e53-b5f8-43e7-be9a-49880a3b4631", "servers": []any{"B"}}}}},
			[]string{`spec.sharingOrganisations[0].servers[0]`, `should match`}},
		{"the same extra tag twice", validPolicy, []mutation{{"spec.extraTags", []any{"tlp:green", "tlp:green"}}},
			[]string{`spec.extraTags[1]: Duplicate value: "tlp:green"`}},
		{"an organisationsFrom entry without a key", validPolicy, []mutation{{"spec.organisationsFrom", []any{map[string]any{"name": "partners"}}}},
			[]string{`spec.organisationsFrom[0].key: Required value`}},
		{"an instance URL that is not http(s)", validInstance, []mutation{{"spec.url", "ftp://misp.example"}},
			[]string{`spec.url: Invalid value: "ftp://misp.example"`, `should match`}},
		{"an instance without URL", validInstance, []mutation{{"spec.url", nil}},
			[]string{`spec.url: Required value`}},
		{"an instance without API key reference", validInstance, []mutation{{"spec.apiKeySecretRef", nil}},
			[]string{`spec.apiKeySecretRef: Required value`}},
		{"a ZeroMQ endpoint that is not tcp://", validInstance, []mutation{{"spec.zeroMQ.endpoint", "http://misp:50000"}},
			[]string{`spec.zeroMQ.endpoint: Invalid value: "http://misp:50000"`, `should match`}},
		{"a ZeroMQ endpoint without port", validInstance, []mutation{{"spec.zeroMQ.endpoint", "tcp://misp-zmq.misp.svc"}},
			[]string{`spec.zeroMQ.endpoint: Invalid value: "tcp://misp-zmq.misp.svc"`}},
		{"a curation concurrency of zero", validInstance, []mutation{{"spec.curation.concurrency", 0}},
			[]string{`spec.curation.concurrency: Invalid value: 0: spec.curation.concurrency in body should be greater than or equal to 1`}},
		{"a rate limit of zero", validInstance, []mutation{{"spec.api.requestsPerSecond", 0}},
			[]string{`spec.api.requestsPerSecond`, `should be greater than or equal to 1`}},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			obj := tc.base()
			for _, m := range tc.muts {
				setPath(obj, m.path, m.value)
			}
			err := dryRunCreate(ctx, obj)
			if err == nil {
				t.Fatalf("apiserver accepted the object; want a rejection mentioning %q", tc.wantMsg)
			}
			for _, want := range tc.wantMsg {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("rejection message does not mention %q:\n%v", want, err)
				}
			}
		})
	}
}

func TestValidObjectsAreAccepted(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		obj  func() map[string]any
	}{
		{"a minimal policy", validPolicy},
		{"a minimal instance", validInstance},
		{"upper-case UUIDs", func() map[string]any {
			p := validPolicy()
			setPath(p, "spec.organisations", []any{map[string]any{"uuid": "5CF66E53-B5F8-43E7-BE9A-49880A3B4631"}})
			return p
		}},
		{"the largest inline list (500 organisations with 128-character names)", func() map[string]any {
			p := validPolicy()
			setPath(p, "spec.organisations", orgs(500, seqUUID))
			return p
		}},
		{"an organisation name with '#' (MISP splits an entry at its first '#' only)", func() map[string]any {
			p := validPolicy()
			setPath(p, "spec.organisations", []any{map[string]any{"uuid": "5cf66e53-b5f8-43e7-be9a-49880a3b4631", "name": "CERT #1"}})
			return p
		}},
		{"a plain http URL with allowInsecureHTTP", func() map[string]any {
			i := validInstance()
			setPath(i, "spec.url", "http://misp.misp.svc")
			setPath(i, "spec.allowInsecureHTTP", true)
			return i
		}},
		{"durations at their bounds", func() map[string]any {
			i := validInstance()
			setPath(i, "spec.curation.catchUp.interval", "1s")
			setPath(i, "spec.curation.catchUp.lookback", "720h")
			setPath(i, "spec.curation.pushDebounce", "0s")
			setPath(i, "spec.api.timeout", "5m")
			return i
		}},
		{"an IPv6 ZeroMQ endpoint", func() map[string]any {
			i := validInstance()
			setPath(i, "spec.zeroMQ.endpoint", "tcp://[fd00::1]:50000")
			return i
		}},
		{"every optional field", func() map[string]any {
			p := validPolicy()
			setPath(p, "spec.warninglistName", "org-confidence-level-high")
			setPath(p, "spec.valuePrefix", "")
			setPath(p, "spec.priority", -5)
			setPath(p, "spec.informationCredibility", "2")
			setPath(p, "spec.extraTags", []any{"tlp:green"})
			setPath(p, "spec.deletionPolicy", "Delete")
			setPath(p, "spec.organisationsFrom", []any{map[string]any{"name": "partners", "key": "high.txt"}})
			return p
		}},
	}
	for _, tc := range cases {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			if err := dryRunCreate(ctx, tc.obj()); err != nil {
				t.Fatalf("apiserver rejected a valid object: %v", err)
			}
		})
	}
}

func TestSamplesAreAccepted(t *testing.T) {
	ctx := context.Background()
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "*.yaml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("want the MISPInstance and two policy samples in config/samples, found %v (%v)", files, err)
	}
	kinds := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		obj := map[string]any{}
		if err := yaml.Unmarshal(data, &obj); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		setPath(obj, "metadata.namespace", "default")
		if err := dryRunCreate(ctx, obj); err != nil {
			t.Errorf("%s rejected: %v", f, err)
		}
		kinds[obj["kind"].(string)]++
	}
	if kinds["MISPInstance"] < 1 || kinds["OrgTrustPolicy"] < 2 {
		t.Errorf("samples should hold a MISPInstance and two OrgTrustPolicies, got %v", kinds)
	}

	t.Run("with kubectl apply --dry-run=server", func(t *testing.T) {
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			t.Skip("kubectl not on PATH; the samples were checked through the API above")
		}
		kubeconfig := writeKubeconfig(t)
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "apply", "--dry-run=server",
			"-n", "default", "-f", filepath.Join("..", "..", "config", "samples")).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl apply --dry-run=server failed: %v\n%s", err, out)
		}
		for _, want := range []string{"mispinstance.misptrust.io/misp-prod created (server dry run)", "orgtrustpolicy.misptrust.io/high created (server dry run)", "orgtrustpolicy.misptrust.io/medium created (server dry run)"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("kubectl output lacks %q:\n%s", want, out)
			}
		}
	})
}
