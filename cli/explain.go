package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/engine"
	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/curator/sources"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// Curation states explain reports.
const (
	stateSettled    = "settled"     // the event has its policy's state: the plan is empty
	statePending    = "pending"     // the curator has calls left to make
	stateFailed     = "failed"      // the curator's last attempt on it failed (policy status)
	stateNotCurated = "not curated" // untrusted creator, or a local event
)

type explainResult struct {
	Instance string        `json:"instance"`
	Event    explainEvent  `json:"event"`
	Policies []policyClaim `json:"policies"`
	Winner   string        `json:"winner,omitempty"`
	// Via is the winner's matching rule: "creator" or "sharer" (trust.Match).
	Via        trust.Via `json:"via,omitempty"`
	WinnerWhy  string    `json:"winnerWhy,omitempty"`
	LocalTags  []string  `json:"localTags"`
	GlobalTags []string  `json:"globalTags"`
	// ShouldHave are the winning policy's tags (trust.Tags), attached as local tags.
	ShouldHave []string `json:"shouldHave"`
	// Calls are what the curator would send now (engine.PlanFor), in order.
	Calls       []plannedCall `json:"calls"`
	State       string        `json:"state"`
	StateDetail string        `json:"stateDetail"`
}

type explainEvent struct {
	ID      string `json:"id"`
	UUID    string `json:"uuid"`
	OrgUUID string `json:"orgUUID"`
	OrgName string `json:"orgName,omitempty"`
	// SharerUUID is the partner that pushed the event (its owner org), looked up only
	// when a policy has sharingOrganisations. A pulled event is owned by the server
	// link's org and no event column names its server: "" then, as in catch-up.
	SharerUUID string    `json:"sharerUUID,omitempty"`
	Locked     bool      `json:"synchronised"`
	Published  bool      `json:"published"`
	Timestamp  time.Time `json:"timestamp"`
}

type policyClaim struct {
	Policy            string   `json:"policy"`
	Priority          int32    `json:"priority"`
	SourceReliability string   `json:"sourceReliability"`
	Publish           bool     `json:"publish"`
	Tags              []string `json:"tags"`
	Wins              bool     `json:"wins"`
	// Via is the rule of this policy that matches the event: "creator" or "sharer".
	Via trust.Via `json:"via"`
	// Why the winner beats this policy (trust.Why); empty on the winner's row.
	Why string `json:"why,omitempty"`
}

type plannedCall struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	What   string `json:"what"`
}

type explainOptions struct {
	kube     kubeFlags
	instance string
	output   string
}

func runExplain(ctx context.Context, args []string, io IO) (int, error) {
	var o explainOptions
	fs := newFlags("explain", io, "explain EVENT-UUID|EVENT-ID --instance [namespace/]name [-o table|json|yaml]")
	o.kube.bind(fs)
	fs.StringVar(&o.instance, "instance", "", "MISPInstance ([namespace/]name) whose MISP holds the event.")
	bindOutput(fs, &o.output)
	if err := fs.Parse(args); err != nil {
		return ExitError, err
	}
	if fs.NArg() != 1 {
		return ExitError, errors.New("want exactly one event: its UUID or its numeric id in this MISP")
	}
	if err := checkOutput(o.output); err != nil {
		return ExitError, err
	}
	ref := strings.TrimSpace(fs.Arg(0))
	instKey, err := instanceRef(o.instance, o.kube.Namespace())
	if err != nil {
		return ExitError, err
	}
	kc, err := o.kube.connect()
	if err != nil {
		return ExitError, err
	}
	var inst v1alpha1.MISPInstance
	if err := kc.Get(ctx, instKey, &inst); err != nil {
		if apierrors.IsNotFound(err) {
			return ExitError, fmt.Errorf("MISPInstance %s does not exist", instKey)
		}
		return ExitError, fmt.Errorf("read MISPInstance %s: %w", instKey, err)
	}
	api, err := mispForInstance(ctx, kc, &inst, io.Version)
	if err != nil {
		return ExitError, err
	}
	res, err := explain(ctx, kc, api, &inst, ref)
	if err != nil {
		return ExitError, err
	}
	if o.output == formatTable {
		res.printTable(io.Out)
		return ExitOK, nil
	}
	return ExitOK, printData(io.Out, o.output, res)
}

func explain(ctx context.Context, kc client.Reader, api mispReader, inst *v1alpha1.MISPInstance, ref string) (*explainResult, error) {
	var m misp.EventMeta
	var err error
	if trust.IsUUID(ref) {
		m, err = api.EventMeta(ctx, ref)
	} else {
		m, err = api.EventMetaByID(ctx, ref)
	}
	if err != nil {
		if errors.Is(err, misp.ErrNotFound) {
			return nil, fmt.Errorf("event %s: not found in MISP (or not visible to the instance's API key)", ref)
		}
		return nil, fmt.Errorf("read event %s: %w", ref, err)
	}

	// The policies as the curator sees them: the instance's, its ConfigMaps read with the
	// same parser, the index built with the same precedence rule.
	var list v1alpha1.OrgTrustPolicyList
	if err := kc.List(ctx, &list, client.InNamespace(inst.Namespace)); err != nil {
		return nil, fmt.Errorf("list OrgTrustPolicies in %s: %w", inst.Namespace, err)
	}
	var policies []*v1alpha1.OrgTrustPolicy
	orgsOf := map[string][]trust.Org{}
	lookup := configMapLookup(ctx, kc, inst.Namespace)
	for i := range list.Items {
		p := &list.Items[i]
		if p.Spec.InstanceRef.Name != inst.Name || !p.DeletionTimestamp.IsZero() {
			continue
		}
		orgs, _, err := trust.EffectiveOrgs(p, lookup)
		if err != nil {
			return nil, fmt.Errorf("organisations of OrgTrustPolicy %s: %w", trust.Key(p), err)
		}
		policies = append(policies, p)
		orgsOf[trust.Key(p)] = orgs
	}
	snap := index.Build(policies, func(p *v1alpha1.OrgTrustPolicy) []trust.Org { return orgsOf[trust.Key(p)] })

	res := &explainResult{
		Instance: inst.Namespace + "/" + inst.Name,
		Event: explainEvent{ID: m.ID, UUID: m.UUID, OrgUUID: m.OrgcUUID, OrgName: m.OrgcName, Locked: m.Locked,
			Published: m.Published, Timestamp: m.Timestamp},
		LocalTags: []string{}, GlobalTags: []string{}, ShouldHave: []string{}, Calls: []plannedCall{}, Policies: []policyClaim{},
	}
	for _, t := range m.Tags {
		if t.Local {
			res.LocalTags = append(res.LocalTags, t.Name)
		} else {
			res.GlobalTags = append(res.GlobalTags, t.Name)
		}
	}
	// The same rule as the curator (engine lookup, catch-up): the creator, and while a
	// policy has sharer rules the owner org as sharer, both through trust.Match.
	src := trust.Source{Creator: m.OrgcUUID}
	if snap.HasSharers() {
		sharer, known, _ := sources.New(sources.Options{Lister: api}).Sharer(ctx, m.OrgID, "")
		if !known && m.OrgID != "" {
			return nil, fmt.Errorf("event %s: its owner organisation (id %s) is not in /organisations/index", ref, m.OrgID)
		}
		src.Sharer = sharer
		res.Event.SharerUUID = sharer
	}
	pol, via, trusted := snap.LookupSource(src)
	cands := map[string]trust.Candidate{}
	var winner *v1alpha1.OrgTrustPolicy
	for _, p := range policies {
		key := trust.Key(p)
		claim := trust.Via("")
		sharers, _ := trust.EffectiveSharers(p)
		switch {
		case hasOrg(orgsOf[key], m.OrgcUUID):
			claim = trust.ViaCreator
		case slices.ContainsFunc(sharers, func(r trust.Sharer) bool { return r.Matches(src) }):
			claim = trust.ViaSharer
		default:
			continue
		}
		cands[key] = trust.Candidate{Key: key, Priority: trust.Priority(p), SourceReliability: p.Spec.SourceReliability}
		if res.Event.OrgName == "" {
			for _, o := range orgsOf[key] {
				if o.UUID == m.OrgcUUID {
					res.Event.OrgName = o.Name
				}
			}
		}
		if trusted && key == pol.Key {
			winner = p
		}
		res.Policies = append(res.Policies, policyClaim{Policy: key, Priority: trust.Priority(p), SourceReliability: p.Spec.SourceReliability,
			Publish: p.Spec.Publish, Tags: trust.Tags(p), Wins: trusted && key == pol.Key, Via: claim})
	}
	if !trusted {
		res.State = stateNotCurated
		res.StateDetail = "no OrgTrustPolicy of this instance lists the creator organisation (or the sharing organisation): the curator makes no MISP call for its events"
		return res, nil
	}
	res.Winner, res.Via = pol.Key, via
	res.ShouldHave = pol.Tags
	var whys []string
	for i := range res.Policies {
		c := &res.Policies[i]
		if !c.Wins {
			c.Why = trust.Why(cands[pol.Key], cands[c.Policy])
			whys = append(whys, fmt.Sprintf("over %s: %s", c.Policy, c.Why))
		}
	}
	if len(whys) == 0 {
		res.WinnerWhy = "the only policy listing the organisation"
	} else {
		res.WinnerWhy = strings.Join(whys, "; ")
	}
	if !m.Locked {
		res.State = stateNotCurated
		res.StateDetail = "created on this MISP (not synchronised from a partner): the curator only curates events it receives"
		return res, nil
	}

	plan := engine.PlanFor(pol, m)
	if len(plan.Attach) > 0 {
		res.Calls = append(res.Calls, plannedCall{Method: "POST", Path: "/tags/attachTagToObject",
			What: fmt.Sprintf("attach %s as local tags", join(quoteAll(plan.Attach)))})
	}
	for _, t := range plan.Remove {
		res.Calls = append(res.Calls, plannedCall{Method: "POST", Path: "/tags/removeTagFromObject", What: fmt.Sprintf("remove %q", t)})
	}
	switch {
	case plan.Publish:
		res.Calls = append(res.Calls, plannedCall{Method: "POST", Path: "/events/publish/" + m.UUID, What: "publish"})
	case plan.PublishIfUnpublished:
		res.Calls = append(res.Calls, plannedCall{Method: "POST", Path: "/events/publish/" + m.UUID,
			What: "publish, only if removing the partner's global tag unpublished it"})
	}
	res.State, res.StateDetail = curationState(plan, m, winner, inst)
	return res, nil
}

// curationState reads what the curator recorded: an empty plan is settled whatever the
// records say; otherwise the winning policy's status.curation says whether its last
// failure was this event, and the instance's status whether it is in dry run and how far
// catch-up has come.
func curationState(plan engine.Plan, m misp.EventMeta, p *v1alpha1.OrgTrustPolicy, inst *v1alpha1.MISPInstance) (string, string) {
	cur := p.Status.Curation
	if plan.Empty() {
		if cur != nil && cur.LastEventUUID == m.UUID && cur.LastEventTime != nil {
			return stateSettled, fmt.Sprintf("the event has its policy's state; the curator last curated it at %s", cur.LastEventTime.UTC().Format(time.RFC3339))
		}
		return stateSettled, "the event has its policy's state: the curator has nothing left to do"
	}
	if cur != nil && cur.LastError != "" && strings.Contains(strings.ToLower(cur.LastError), m.UUID) {
		return stateFailed, fmt.Sprintf("the curator's last attempt failed: %s (catch-up retries it at its next pass)", cur.LastError)
	}
	if c := inst.Spec.Curation; c != nil && c.DryRun {
		return statePending, "the MISPInstance is in dry run (spec.curation.dryRun): the curator logs these calls and makes none"
	}
	detail := "the curator has not made these calls yet: it curates the event on its next ZeroMQ message or catch-up pass"
	if cu := inst.Status.CatchUp; cu != nil && cu.Watermark != nil {
		if !m.Timestamp.IsZero() && m.Timestamp.Before(cu.Watermark.Time) {
			detail = fmt.Sprintf("the curator has not made these calls; the event's timestamp is before the catch-up watermark (%s), so it is curated on its next ZeroMQ message, a re-curation after a trust change or when it is published again",
				cu.Watermark.UTC().Format(time.RFC3339))
		} else {
			detail = fmt.Sprintf("the curator has not made these calls yet; catch-up has reached %s and its next pass covers the event", cu.Watermark.UTC().Format(time.RFC3339))
		}
	}
	return statePending, detail
}

func quoteAll(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// configMapLookup reads organisationsFrom ConfigMaps from the cluster.
func configMapLookup(ctx context.Context, kc client.Reader, ns string) trust.LookupFunc {
	return func(ref v1alpha1.ConfigMapKeyReference) (string, bool, error) {
		var cm corev1.ConfigMap
		if err := kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, &cm); err != nil {
			if apierrors.IsNotFound(err) {
				return "", false, nil
			}
			return "", false, err
		}
		v, ok := cm.Data[ref.Key]
		return v, ok, nil
	}
}

func (r *explainResult) printTable(w io.Writer) {
	e := r.Event
	how := "created on this MISP"
	if e.Locked {
		how = "synchronised from a partner"
	}
	fmt.Fprintf(w, "Event %s (id %s) on %s: %s, published: %s, timestamp %s\n", e.UUID, e.ID, r.Instance, how, yesNo(e.Published), e.Timestamp.UTC().Format(time.RFC3339))
	org := e.OrgUUID
	if e.OrgName != "" {
		org += " (" + e.OrgName + ")"
	}
	fmt.Fprintf(w, "Creator organisation: %s\n", org)
	if e.SharerUUID != "" {
		fmt.Fprintf(w, "Sharing organisation: %s (pushed it)\n", e.SharerUUID)
	}
	fmt.Fprintln(w)
	if len(r.Policies) == 0 {
		fmt.Fprintln(w, "Policies listing it: none")
	} else {
		fmt.Fprintln(w, "Policies listing it:")
		t := newTable(w, "POLICY", "PRIORITY", "GRADE", "PUBLISH", "WINS", "WHY NOT")
		for _, p := range r.Policies {
			t.row(p.Policy, fmt.Sprint(p.Priority), p.SourceReliability, yesNo(p.Publish), yesNo(p.Wins), p.Why)
		}
		t.flush()
	}
	if r.Winner != "" {
		how := ""
		if r.Via == trust.ViaSharer {
			how = " by its sharingOrganisations rule"
		}
		fmt.Fprintf(w, "Winner: %s%s (%s)\n", r.Winner, how, r.WinnerWhy)
	}
	fmt.Fprintf(w, "\nLocal tags:   %s\nGlobal tags:  %s\nShould have:  %s\n", orNone(r.LocalTags), orNone(r.GlobalTags), orNone(r.ShouldHave))
	fmt.Fprintln(w, "\nCalls the curator would make now:")
	if len(r.Calls) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for i, c := range r.Calls {
		fmt.Fprintf(w, "  %d. %s %s: %s\n", i+1, c.Method, c.Path, c.What)
	}
	fmt.Fprintf(w, "\nState: %s: %s\n", r.State, r.StateDetail)
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return join(list)
}
