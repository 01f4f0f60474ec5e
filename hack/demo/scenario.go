package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/trust"
)

const demoNamespace = "default"

// Organisations of hack/demo/seed.json.
var orgs = map[string]string{
	"CIRCL":          "5cf66e53-b5f8-43e7-be9a-49880a3b4631",
	"PARTNER-HIGH":   "1521ae8b-48de-4766-8b2a-fdecef763fa8",
	"PARTNER-MEDIUM": "7f1b3c2e-9d4a-4e8b-a6c5-0b2d4f6e8a19",
	"UNKNOWN-FEED":   "3d0c6f0a-8f7e-4b1c-9a55-2e6b8d1f4c70",
	"HUB":            "2b6f0c1e-3d4a-4c5b-8e9f-a0b1c2d3e4f5",
}

// hubServer is the seed's connected server to the HUB (the pulls of every other
// event go through server 1, PARTNER-HIGH's).
const hubServer = "2"

// hubPolicy is the demo's sharer policy: events the HUB shares with us, whoever created
// them, get grade b (trust by source, README "Trust by source").
const hubPolicy = `apiVersion: misptrust.io/v1alpha1
kind: OrgTrustPolicy
metadata:
  name: hub
spec:
  instanceRef: {name: misp-prod}
  priority: 10
  sourceReliability: b
  sharingOrganisations:
    - {uuid: 2b6f0c1e-3d4a-4c5b-8e9f-a0b1c2d3e4f5, name: HUB}
`

// applySamples applies config/samples/ unchanged except for where MISP is: the
// samples point at an in-cluster MISP, the demo's runs on loopback.
func (d *demo) applySamples(ctx context.Context) error {
	secrets := []*corev1.Secret{
		// The operator reads only Secrets that opt in (README, Security model).
		{ObjectMeta: metav1.ObjectMeta{Name: "misp-api", Namespace: demoNamespace, Labels: map[string]string{trust.AllowLabel: trust.AllowValue}},
			StringData: map[string]string{"apiKey": d.apiKey}},
		{ObjectMeta: metav1.ObjectMeta{Name: "misp-zmq", Namespace: demoNamespace, Labels: map[string]string{trust.AllowLabel: trust.AllowValue}},
			StringData: map[string]string{"username": "curator", "password": d.zmqPassword}},
	}
	for _, s := range secrets {
		if err := d.k8s.Create(ctx, s); err != nil {
			return fmt.Errorf("create Secret %s: %w", s.Name, err)
		}
	}
	files, err := filepath.Glob(filepath.Join(d.root, "config", "samples", "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no samples in config/samples (%v)", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(data, &meta); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		var obj client.Object
		switch meta.Kind {
		case "MISPInstance":
			inst := &v1alpha1.MISPInstance{}
			if err := yaml.UnmarshalStrict(data, inst); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			inst.Spec.URL = d.mispURL
			inst.Spec.AllowInsecureHTTP = true // the double speaks plain http on loopback
			inst.Spec.ZeroMQ.Endpoint = d.zmqEndpoint
			// The demo's catch-up runs often so the stopped-curator event is
			// visible quickly; production keeps the 5m default.
			inst.Spec.Curation.CatchUp.Interval = &metav1.Duration{Duration: 10 * time.Second}
			inst.Spec.Curation.PushDebounce = &metav1.Duration{Duration: time.Second}
			obj = inst
		case "OrgTrustPolicy":
			p := &v1alpha1.OrgTrustPolicy{}
			if err := yaml.UnmarshalStrict(data, p); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			obj = p
		default:
			return fmt.Errorf("%s: unexpected kind %q", f, meta.Kind)
		}
		obj.SetNamespace(demoNamespace)
		if err := d.k8s.Create(ctx, obj); err != nil {
			return fmt.Errorf("apply %s: %w", filepath.Base(f), err)
		}
		fmt.Fprintf(d.out, "         %s/%s created\n", strings.ToLower(meta.Kind), obj.GetName())
	}
	hub := &v1alpha1.OrgTrustPolicy{}
	if err := yaml.UnmarshalStrict([]byte(hubPolicy), hub); err != nil {
		return fmt.Errorf("hub policy: %w", err)
	}
	hub.SetNamespace(demoNamespace)
	if err := d.k8s.Create(ctx, hub); err != nil {
		return fmt.Errorf("apply the hub policy: %w", err)
	}
	fmt.Fprintf(d.out, "         orgtrustpolicy/hub created (sharingOrganisations: HUB, grade b)\n")
	return nil
}

func (d *demo) waitReady(ctx context.Context) error {
	d.step("waiting for the MISPInstance and the three policies to be Ready")
	err := poll(ctx, func() (bool, error) {
		var inst v1alpha1.MISPInstance
		if err := d.k8s.Get(ctx, client.ObjectKey{Namespace: demoNamespace, Name: "misp-prod"}, &inst); err != nil {
			return false, nil
		}
		if !meta.IsStatusConditionTrue(inst.Status.Conditions, v1alpha1.ConditionReady) {
			return false, nil
		}
		var list v1alpha1.OrgTrustPolicyList
		if err := d.k8s.List(ctx, &list, client.InNamespace(demoNamespace)); err != nil {
			return false, nil
		}
		for _, p := range list.Items {
			if !meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionReady) {
				return false, nil
			}
		}
		return len(list.Items) == 3, nil
	})
	if err != nil {
		d.kubectlGet(context.Background())
		return fmt.Errorf("operator not ready: %w (logs in %s)", err, d.work)
	}
	var high v1alpha1.OrgTrustPolicy
	if err := d.k8s.Get(ctx, client.ObjectKey{Namespace: demoNamespace, Name: "high"}, &high); err == nil && high.Status.Warninglist != nil {
		fmt.Fprintf(d.out, "         policy high adopted the existing warninglist %q (id %s, %d entries)\n",
			high.Status.Warninglist.Name, high.Status.Warninglist.ID, high.Status.Warninglist.Entries)
	}
	return nil
}

// simEvent is one event of the scenario and what it should end up as.
type simEvent struct {
	Label     string
	Via       string // pull | push
	Orgc      string
	Sharer    string   // the HUB shared it (pushed it, or pulled through its server); "" otherwise
	Tags      []string // the partner's (global) tags
	Published bool

	UUID       string
	Policy     string   // expected winning policy, "" for untrusted
	WantTags   []string // expected local tags
	WantPublic bool
}

type result struct {
	simEvent
	LocalTags []string
	Published bool
	Calls     []string
	Problem   string
}

// scenario simulates a realistic synchronisation and waits for the curator.
func (d *demo) scenario(ctx context.Context) ([]result, error) {
	policies, err := d.policies(ctx)
	if err != nil {
		return nil, err
	}
	incomplete := trust.TagWorkflowIncomplete
	events := []*simEvent{
		{Label: "pulled, high trust", Via: "pull", Orgc: "CIRCL", Tags: []string{"tlp:green", incomplete}, Published: true},
		{Label: "pulled, medium trust", Via: "pull", Orgc: "PARTNER-MEDIUM", Tags: []string{"tlp:green"}, Published: true},
		{Label: "pulled, untrusted", Via: "pull", Orgc: "UNKNOWN-FEED", Tags: []string{"tlp:green"}, Published: true},
		{Label: "pushed, high trust", Via: "push", Orgc: "PARTNER-HIGH", Tags: []string{incomplete}, Published: false},
		{Label: "pushed, untrusted", Via: "push", Orgc: "UNKNOWN-FEED", Tags: []string{"tlp:white"}, Published: false},
		{Label: "pulled via the HUB, creator untrusted", Via: "pull", Orgc: "UNKNOWN-FEED", Sharer: "HUB", Tags: []string{"tlp:green"}, Published: true},
		{Label: "pushed by the HUB, creator untrusted", Via: "push", Orgc: "UNKNOWN-FEED", Sharer: "HUB", Tags: []string{"tlp:green"}, Published: false},
	}
	if err := d.waitFeed(ctx); err != nil {
		return nil, err
	}
	d.step("simulating partner syncs: 4 pulls, 3 pushes (2 shared by the HUB), then the medium event pulled again (duplicate)")
	for _, e := range events {
		if err := d.sync(ctx, e); err != nil {
			return nil, err
		}
	}
	dup := *events[1]
	dup.Label = "duplicate"
	if err := d.sync(ctx, &dup); err != nil {
		return nil, err
	}
	expect(events, policies)
	d.step("waiting for the curator")
	if err := d.waitCurated(ctx, events); err != nil {
		return nil, err
	}

	d.step("stopping the curator; a partner's event is pulled meanwhile (its ZeroMQ messages are lost)")
	d.stopProcess("curator")
	missed := &simEvent{Label: "pulled while curator down", Via: "pull", Orgc: "CIRCL", Tags: []string{incomplete}, Published: true}
	if err := d.sync(ctx, missed); err != nil {
		return nil, err
	}
	events = append(events, missed)
	expect(events, policies)
	d.step("restarting the curator: its REST catch-up, from the watermark kept in the MISPInstance status, finds the missed event")
	if err := d.startOperator(ctx, "curator"); err != nil {
		return nil, err
	}
	if err := d.waitCurated(ctx, events); err != nil {
		return nil, err
	}
	if err := d.waitFeed(ctx); err != nil {
		return nil, err
	}
	// Untrusted events must stay untouched: give a late action a moment to show.
	time.Sleep(time.Second)
	return d.collect(ctx, events)
}

// expect fills in what each event should end up as, from the policies: by creator, or
// for the HUB's shares of untrusted creators by the hub policy (its priority 10 is below
// the creator policies', so a trusted creator would win).
func expect(events []*simEvent, policies map[string]*v1alpha1.OrgTrustPolicy) {
	for _, e := range events {
		p, ok := policies[orgs[e.Orgc]]
		if !ok && e.Sharer != "" {
			p, ok = policies["sharer:"+orgs[e.Sharer]]
		}
		if ok {
			e.Policy = p.Name
			e.WantTags = trust.Tags(p)
			e.WantPublic = p.Spec.Publish || e.Published
		} else {
			e.WantPublic = e.Published
		}
	}
}

func (d *demo) waitCurated(ctx context.Context, events []*simEvent) error {
	var last []result
	err := poll(ctx, func() (bool, error) {
		res, err := d.collect(ctx, events)
		if err != nil {
			return false, nil
		}
		last = res
		return len(failures(res)) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("events not curated in time: %v (logs in %s)", failures(last), d.work)
	}
	return nil
}

// waitFeed waits until the curator reports its ZeroMQ subscription connected.
func (d *demo) waitFeed(ctx context.Context) error {
	err := poll(ctx, func() (bool, error) {
		var inst v1alpha1.MISPInstance
		if err := d.k8s.Get(ctx, client.ObjectKey{Namespace: demoNamespace, Name: "misp-prod"}, &inst); err != nil {
			return false, nil
		}
		return inst.Status.Feed != nil && inst.Status.Feed.State == "Connected", nil
	})
	if err != nil {
		return fmt.Errorf("the curator's ZeroMQ feed did not connect: %w (logs in %s)", err, d.work)
	}
	return nil
}

func (d *demo) policies(ctx context.Context) (map[string]*v1alpha1.OrgTrustPolicy, error) {
	var list v1alpha1.OrgTrustPolicyList
	if err := d.k8s.List(ctx, &list, client.InNamespace(demoNamespace)); err != nil {
		return nil, err
	}
	var cands []trust.Candidate
	byKey := map[string]*v1alpha1.OrgTrustPolicy{}
	for i := range list.Items {
		p := &list.Items[i]
		o, _, err := trust.EffectiveOrgs(p, func(v1alpha1.ConfigMapKeyReference) (string, bool, error) { return "", false, nil })
		if err != nil {
			return nil, err
		}
		sh, _ := trust.EffectiveSharers(p)
		cands = append(cands, trust.Candidate{Key: trust.Key(p), Priority: trust.Priority(p), SourceReliability: p.Spec.SourceReliability, Orgs: o, Sharers: sh})
		byKey[trust.Key(p)] = p
	}
	out := map[string]*v1alpha1.OrgTrustPolicy{}
	for org, key := range trust.Resolve(cands).Winner {
		out[org] = byKey[key]
	}
	for org, key := range trust.ResolveSharers(cands).Winner {
		out[trust.SharerValuePrefix+org] = byKey[key]
	}
	return out, nil
}

func (d *demo) sync(ctx context.Context, e *simEvent) error {
	spec := map[string]any{
		"orgc":       map[string]string{"uuid": orgs[e.Orgc], "name": e.Orgc},
		"published":  e.Published,
		"attributes": 3,
		"tags":       e.Tags,
		"info":       fmt.Sprintf("Demo: %s event from %s", e.Label, e.Orgc),
	}
	switch {
	case e.Sharer != "" && e.Via == "push":
		spec["org"] = map[string]string{"uuid": orgs[e.Sharer], "name": e.Sharer} // the pushing partner owns it
	case e.Sharer != "":
		spec["server_id"] = hubServer
	}
	if e.UUID != "" {
		spec = map[string]any{"uuid": e.UUID}
	}
	body, _ := json.Marshal(spec)
	var view struct {
		UUID string `json:"uuid"`
	}
	if err := d.mispDo(ctx, "POST", "/_sim/"+e.Via, string(body), &view); err != nil {
		return fmt.Errorf("simulate %s: %w", e.Label, err)
	}
	e.UUID = view.UUID
	return nil
}

type eventView struct {
	UUID      string `json:"uuid"`
	Published bool   `json:"published"`
	Tags      []struct {
		Name  string `json:"name"`
		Local bool   `json:"local"`
	} `json:"tags"`
}

func (d *demo) collect(ctx context.Context, events []*simEvent) ([]result, error) {
	var all []eventView
	if err := d.mispGET(ctx, "/_sim/events", &all); err != nil {
		return nil, err
	}
	byUUID := map[string]eventView{}
	for _, v := range all {
		byUUID[v.UUID] = v
	}
	var out []result
	for _, e := range events {
		r := result{simEvent: *e}
		v, ok := byUUID[e.UUID]
		if !ok {
			r.Problem = "not in MISP"
			out = append(out, r)
			continue
		}
		r.Published = v.Published
		hasIncomplete := false
		for _, t := range v.Tags {
			if t.Local {
				r.LocalTags = append(r.LocalTags, t.Name)
			}
			if t.Name == trust.TagWorkflowIncomplete {
				hasIncomplete = true
			}
		}
		var calls []struct {
			Method, Route string
			Status        int
		}
		if err := d.mispGET(ctx, "/_sim/requests?event="+e.UUID, &calls); err != nil {
			return nil, err
		}
		for _, c := range calls {
			r.Calls = append(r.Calls, fmt.Sprintf("%s %d", strings.TrimPrefix(c.Route, "/"), c.Status))
		}
		switch {
		case !sameSet(r.LocalTags, e.WantTags):
			r.Problem = fmt.Sprintf("local tags %q, want %q", r.LocalTags, e.WantTags)
		case r.Published != e.WantPublic:
			r.Problem = fmt.Sprintf("published=%v, want %v", r.Published, e.WantPublic)
		case e.Policy != "" && hasIncomplete && slices.Contains(e.WantTags, trust.TagWorkflowComplete):
			r.Problem = `workflow:state="incomplete" still attached`
		case e.Policy == "" && len(calls) > 0:
			r.Problem = fmt.Sprintf("untrusted event cost %d MISP call(s)", len(calls))
		}
		out = append(out, r)
	}
	return out, nil
}

func failures(results []result) []string {
	var bad []string
	for _, r := range results {
		if r.Problem != "" {
			bad = append(bad, r.Label+": "+r.Problem)
		}
	}
	return bad
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func (d *demo) report(ctx context.Context, results []result) {
	fmt.Fprintln(d.out)
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tHOW\tCREATOR ORG\tPOLICY\tLOCAL TAGS ADDED\tPUBLISHED\tMISP CALLS")
	for _, r := range results {
		policy := r.Policy
		if policy == "" {
			policy = "(untrusted)"
		}
		tags := "-"
		if len(r.LocalTags) > 0 {
			tags = strings.Join(r.LocalTags, " ")
		}
		calls := fmt.Sprintf("%d", len(r.Calls))
		if len(r.Calls) > 0 {
			calls += " (" + strings.Join(r.Calls, ", ") + ")"
		}
		status := ""
		if r.Problem != "" {
			status = "  <-- " + r.Problem
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s%s\n", r.UUID[:8], r.Label, r.Orgc, policy, tags, r.Published, calls, status)
	}
	tw.Flush()
	fmt.Fprintln(d.out, "\nMISP CALLS counts the REST calls naming the event; catch-up's shared /events/index pages are not counted per event.")
	fmt.Fprintln(d.out)
	d.kubectlGet(ctx)
}

func (d *demo) kubectlGet(ctx context.Context) {
	fmt.Fprintln(d.out, "$ kubectl get mispi,otp")
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		fmt.Fprintln(d.out, "(kubectl not found on PATH)")
		return
	}
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", d.kubeconfig, "-n", demoNamespace, "get", "mispi,otp")
	cmd.Stdout, cmd.Stderr = d.out, d.out
	_ = cmd.Run()
}

func (d *demo) serve(ctx context.Context) {
	d.mu.Lock()
	controllerMetrics, curatorMetrics := d.metricsAddr["controller"], d.metricsAddr["curator"]
	d.mu.Unlock()
	fmt.Fprintf(d.out, `
Everything keeps running. In another shell:

  export KUBECONFIG=%s
  kubectl get mispi,otp -o wide
  kubectl apply -f my-policy.yaml            # your own OrgTrustPolicy (namespace %s, instanceRef misp-prod)

  MISP double:   %s   (API key in Secret %s/misp-api)
  ZeroMQ:        %s   (PLAIN, Secret %s/misp-zmq)
  simulate a pull from a trusted partner:
  curl -s -X POST %s/_sim/pull -d '{"orgc":{"uuid":"%s","name":"CIRCL"},"published":true,"attributes":3}'
  curl -s %s/_sim/events

  Metrics:       controller http://%s/metrics   curator http://%s/metrics

Logs: %s   Ctrl-C stops everything.
`, d.kubeconfig, demoNamespace, d.mispURL, demoNamespace, d.zmqEndpoint, demoNamespace, d.mispURL, orgs["CIRCL"], d.mispURL,
		controllerMetrics, curatorMetrics, d.work)
	<-ctx.Done()
}

func poll(ctx context.Context, cond func() (bool, error)) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
