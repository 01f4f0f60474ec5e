package gitopscheck

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

var gitopsDir = filepath.Join("..", "..", "config", "gitops")

// health is the verdict in Argo CD's words; Flux's are mapped onto them.
type health string

const (
	healthy     health = "Healthy"
	degraded    health = "Degraded"
	progressing health = "Progressing"
	// unknown: Flux's verdict when an expression cannot be evaluated (no status
	// at all yet); it keeps polling, like Progressing.
	unknown health = "Unknown"
)

type fixture struct {
	name string
	obj  string // YAML
	argo health
	flux health
}

// Objects as the controller writes them (conditions with observedGeneration;
// see api/v1alpha1). generation 3 unless said otherwise.
var fixtures = []fixture{
	{"no status yet", `{metadata: {generation: 1}}`, progressing, unknown},
	{"status without observedGeneration (curator wrote first)",
		`{metadata: {generation: 1}, status: {feed: {state: Connected}}}`, progressing, progressing},
	{"generation not observed yet",
		`{metadata: {generation: 3}, status: {observedGeneration: 2, conditions: [{type: Ready, status: "True", reason: Ready, observedGeneration: 2}]}}`,
		progressing, progressing},
	{"observed, no conditions field",
		`{metadata: {generation: 3}, status: {observedGeneration: 3}}`, progressing, progressing},
	{"observed, no Ready condition",
		`{metadata: {generation: 3}, status: {observedGeneration: 3, conditions: [{type: Synced, status: "True", reason: Synced}]}}`,
		progressing, progressing},
	{"Ready condition for an older generation",
		`{metadata: {generation: 3}, status: {observedGeneration: 3, conditions: [{type: Ready, status: "True", reason: Ready, observedGeneration: 2}]}}`,
		progressing, progressing},
	{"Ready=Unknown",
		`{metadata: {generation: 3}, status: {observedGeneration: 3, conditions: [{type: Ready, status: Unknown, reason: NotChecked, observedGeneration: 3}]}}`,
		progressing, progressing},
	{"Ready=False: first warninglist write pending",
		`{metadata: {generation: 3}, status: {observedGeneration: 3, conditions: [{type: Ready, status: "False", reason: SyncPending, message: creating warninglist, observedGeneration: 3}]}}`,
		progressing, progressing},
	{"Ready=False: waiting for the MISPInstance",
		`{metadata: {generation: 3}, status: {observedGeneration: 3, conditions: [{type: Ready, status: "False", reason: InstanceNotReady, observedGeneration: 3}]}}`,
		progressing, progressing},
	{"Ready=False: key is not site admin",
		`{metadata: {generation: 3}, status: {observedGeneration: 3, conditions: [{type: Reachable, status: "True", reason: Reachable, observedGeneration: 3}, {type: Ready, status: "False", reason: NotSiteAdmin, message: publishing needs a site admin key, observedGeneration: 3}]}}`,
		degraded, degraded},
	{"Ready=False without a condition observedGeneration",
		`{metadata: {generation: 3}, status: {observedGeneration: 3, conditions: [{type: Ready, status: "False", reason: Unreachable}]}}`,
		degraded, degraded},
	{"Ready=False: warninglist name taken",
		`{metadata: {generation: 3}, status: {observedGeneration: 3, conditions: [{type: Ready, status: "False", reason: WarninglistNameTaken, observedGeneration: 3}]}}`,
		degraded, degraded},
	{"Ready=True",
		`{metadata: {generation: 3}, status: {observedGeneration: 3, conditions: [{type: Synced, status: "True", reason: Synced, observedGeneration: 3}, {type: Ready, status: "True", reason: Ready, message: warninglist 12 has 2 entries, observedGeneration: 3}]}}`,
		healthy, healthy},
	{"Ready=True, curator conditions beside it",
		`{metadata: {generation: 7}, status: {observedGeneration: 7, conditions: [{type: FeedConnected, status: "False", reason: Disconnected}, {type: Ready, status: "True", reason: Ready, observedGeneration: 7}]}}`,
		healthy, healthy},
}

func parse(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("fixture %q: %v", s, err)
	}
	return m
}

func TestArgoCDHealthLua(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(gitopsDir, "argocd", "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			status, msg, err := runLua(string(script), parse(t, f.obj))
			if err != nil {
				t.Fatal(err)
			}
			if status != f.argo {
				t.Errorf("Argo CD health = %s (%q), want %s", status, msg, f.argo)
			}
			if msg == "" {
				t.Error("no message")
			}
		})
	}
}

// runLua runs an Argo CD health script the way Argo CD does: the object as the
// global table obj, the script returns {status=..., message=...}. Only the
// base, table and string libraries are opened (Argo CD opens a safe subset).
func runLua(script string, obj map[string]any) (health, string, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}} {
		l.Push(l.NewFunction(lib.fn))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return "", "", fmt.Errorf("run health.lua: %w", err)
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("health.lua returned %s, want a table", l.Get(-1).Type())
	}
	return health(ret.RawGetString("status").String()), ret.RawGetString("message").String(), nil
}

// toLua converts decoded JSON to Lua values as Argo CD does (numbers become
// Lua numbers, arrays 1-based tables).
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case map[string]any:
		t := l.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(l, e))
		}
		return t
	case []any:
		t := l.NewTable()
		for _, e := range v {
			t.Append(toLua(l, e))
		}
		return t
	default:
		panic(fmt.Sprintf("unexpected %T", v))
	}
}

// The argocd-cm patch carries health.lua verbatim for both kinds.
func TestArgoCDPatchCarriesHealthLua(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(gitopsDir, "argocd", "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	cm := readYAML(t, filepath.Join(gitopsDir, "argocd", "argocd-cm-patch.yaml"))[0]
	data, _ := cm["data"].(map[string]any)
	for _, kind := range []string{"MISPInstance", "OrgTrustPolicy"} {
		key := "resource.customizations.health.misptrust.io_" + kind
		if data[key] != string(script) {
			t.Errorf("argocd-cm-patch.yaml %s differs from health.lua: copy it again", key)
		}
	}
}

func TestFluxHealthCheckExprs(t *testing.T) {
	docs := readYAML(t, filepath.Join(gitopsDir, "flux", "trust-lists.yaml"))
	var checks []any
	for _, d := range docs {
		if d["kind"] == "Kustomization" {
			checks, _ = d["spec"].(map[string]any)["healthCheckExprs"].([]any)
		}
	}
	kinds := map[string]bool{}
	for _, c := range checks {
		c := c.(map[string]any)
		kind := c["kind"].(string)
		kinds[kind] = true
		if c["apiVersion"] != "misptrust.io/v1alpha1" {
			t.Errorf("%s: apiVersion %v", kind, c["apiVersion"])
		}
		ev, err := newFluxEvaluator(str(c["inProgress"]), str(c["failed"]), str(c["current"]))
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		for _, f := range fixtures {
			t.Run(kind+"/"+f.name, func(t *testing.T) {
				got, err := ev.evaluate(context.Background(), parse(t, f.obj))
				if err != nil && f.flux != unknown {
					t.Fatalf("evaluate: %v", err)
				}
				if err != nil {
					got = unknown
				}
				if got != f.flux {
					t.Errorf("Flux health = %s, want %s", got, f.flux)
				}
			})
		}
	}
	if !kinds["MISPInstance"] || !kinds["OrgTrustPolicy"] {
		t.Errorf("healthCheckExprs cover %v, want both kinds", kinds)
	}
}

func str(v any) string { s, _ := v.(string); return s }

// fluxEvaluator reproduces fluxcd/pkg/runtime/cel (StatusEvaluator and
// NewExpression): the same CEL environment options, expressions parsed (not
// compiled: the object's fields are undeclared), a status.observedGeneration
// different from metadata.generation means in progress, then inProgress,
// failed and current in that order, the first true wins, none true means in
// progress.
type fluxEvaluator struct{ inProgress, failed, current cel.Program }

func newFluxEvaluator(inProgress, failed, current string) (*fluxEvaluator, error) {
	env, err := cel.NewEnv(
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Sets(),
		ext.Encoders(),
	)
	if err != nil {
		return nil, err
	}
	prog := func(expr string) (cel.Program, error) {
		if expr == "" {
			return nil, nil
		}
		ast, iss := env.Parse(expr)
		if iss != nil && iss.Err() != nil {
			return nil, fmt.Errorf("parse %q: %w", expr, iss.Err())
		}
		return env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100))
	}
	var e fluxEvaluator
	if e.inProgress, err = prog(inProgress); err != nil {
		return nil, err
	}
	if e.failed, err = prog(failed); err != nil {
		return nil, err
	}
	if strings.TrimSpace(current) == "" {
		return nil, fmt.Errorf("current is required")
	}
	if e.current, err = prog(current); err != nil {
		return nil, err
	}
	return &e, nil
}

func (e *fluxEvaluator) evaluate(ctx context.Context, obj map[string]any) (health, error) {
	status, _ := obj["status"].(map[string]any)
	meta, _ := obj["metadata"].(map[string]any)
	if og, ok := status["observedGeneration"]; ok && fmt.Sprint(og) != fmt.Sprint(meta["generation"]) {
		return progressing, nil
	}
	for _, step := range []struct {
		prog cel.Program
		h    health
	}{{e.inProgress, progressing}, {e.failed, degraded}, {e.current, healthy}} {
		if step.prog == nil {
			continue
		}
		val, _, err := step.prog.ContextEval(ctx, obj)
		if err != nil {
			return "", err
		}
		b, ok := val.(types.Bool)
		if !ok {
			return "", fmt.Errorf("expression returned %v, want a bool", val)
		}
		if b {
			return step.h, nil
		}
	}
	return progressing, nil
}

func readYAML(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}
