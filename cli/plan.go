package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/controllers"
	"github.com/misptrust/misp-trust-operator/curator/catchup"
	"github.com/misptrust/misp-trust-operator/curator/engine"
	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// planFieldManager owns the fields of plan's server-side dry-run applies (never stored).
const planFieldManager = "misp-trust-plan"

// searchPageSize is the page size of plan's event searches (as catch-up's).
const searchPageSize = catchup.DefaultPageSize

type planResult struct {
	Objects      []objectChange `json:"objects"`
	Moves        []orgMove      `json:"moves"`
	Conflicts    []conflictRow  `json:"conflicts"`
	Warninglists []listChange   `json:"warninglists"`
	Events       []eventImpact  `json:"events"`
	// Since is the start of the look-back window of Events, per instance.
	Since  map[string]time.Time `json:"since,omitempty"`
	Notes  []string             `json:"notes,omitempty"`
	Errors []string             `json:"errors,omitempty"`
	// Changes: applying the files changes objects, organisations, lists or events.
	Changes bool `json:"changes"`
}

type objectChange struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Action: create, update, reordered (organisations in another order: no effect),
	// unchanged, delete (--prune), invalid.
	Action string `json:"action"`
	Source string `json:"source,omitempty"`
	Error  string `json:"error,omitempty"`
}

type orgMove struct {
	Instance string `json:"instance"`
	UUID     string `json:"uuid"`
	Name     string `json:"name,omitempty"`
	From     string `json:"from,omitempty"` // winning policy now; "" untrusted
	To       string `json:"to,omitempty"`   // winning policy after; "" untrusted
	Reason   string `json:"reason"`
}

type conflictRow struct {
	Instance string `json:"instance"`
	UUID     string `json:"uuid"`
	Name     string `json:"name,omitempty"`
	Policy   string `json:"policy"` // lists the organisation and loses it
	Winner   string `json:"winner"`
	Reason   string `json:"reason"`
	New      bool   `json:"new"`
}

type listChange struct {
	Instance    string `json:"instance"`
	Policy      string `json:"policy"`
	Warninglist string `json:"warninglist"`
	ID          string `json:"id,omitempty"`
	// Action: create, adopt, update, unchanged, delete, retain, blocked.
	Action  string   `json:"action"`
	Added   []string `json:"added,omitempty"`   // entries "value # comment"
	Removed []string `json:"removed,omitempty"` // entries "value # comment"
	Detail  string   `json:"detail,omitempty"`
}

type eventImpact struct {
	Instance  string    `json:"instance"`
	ID        string    `json:"id"`
	UUID      string    `json:"uuid"`
	OrgUUID   string    `json:"orgUUID"`
	OrgName   string    `json:"orgName,omitempty"`
	Timestamp time.Time `json:"timestamp"`
	From      string    `json:"from,omitempty"`
	To        string    `json:"to,omitempty"`
	Effect    string    `json:"effect"`
	// The curator's plan for the event after the change (engine.PlanFor).
	Attach  []string `json:"attach,omitempty"`
	Remove  []string `json:"remove,omitempty"`
	Publish string   `json:"publish"` // yes, no, "if unpublished"
}

type planOptions struct {
	kube     kubeFlags
	files    []string
	prune    bool
	lookback time.Duration
	output   string
}

func runPlan(ctx context.Context, args []string, io IO) (int, error) {
	var o planOptions
	fs := newFlags("plan", io, "plan -f FILE|DIR|- [-f ...] [--prune] [--lookback 24h] [-o table|json|yaml]")
	o.kube.bind(fs)
	fs.StringArrayVarP(&o.files, "filename", "f", nil, "Policy files, directories of them (not recursive), or - for standard input.")
	fs.BoolVar(&o.prune, "prune", false, "Plan the deletion of the policies of the same MISPInstances that the files do not hold (as a GitOps prune does).")
	fs.DurationVar(&o.lookback, "lookback", 0, "How far back to look for events whose curation changes (default: the MISPInstance's spec.curation.catchUp.lookback, else 24h — what the curator re-curates).")
	bindOutput(fs, &o.output)
	if err := fs.Parse(args); err != nil {
		return ExitError, err
	}
	if fs.NArg() > 0 {
		return ExitError, fmt.Errorf("unexpected arguments %q (files go after -f)", fs.Args())
	}
	if err := checkOutput(o.output); err != nil {
		return ExitError, err
	}
	objs, notes, err := readObjects(o.files, os.Stdin)
	if err != nil {
		return ExitError, err
	}
	kc, err := o.kube.connect()
	if err != nil {
		return ExitError, err
	}
	pl := &planner{kc: kc, ns: o.kube.Namespace(), prune: o.prune, lookback: o.lookback, version: io.Version,
		res: &planResult{Notes: notes, Since: map[string]time.Time{}}, configMaps: map[types.NamespacedName]*corev1.ConfigMap{}}
	if err := pl.run(ctx, objs); err != nil {
		return ExitError, err
	}
	res := pl.res
	if o.output == formatTable {
		res.printTable(io.Out)
	} else if err := printData(io.Out, o.output, res); err != nil {
		return ExitError, err
	}
	switch {
	case len(res.Errors) > 0:
		return ExitError, fmt.Errorf("%s", strings.Join(res.Errors, "; "))
	case res.Changes:
		return ExitChanges, nil
	}
	return ExitOK, nil
}

type planner struct {
	kc       client.Client // dry-run: every write is validated, never stored
	ns       string        // namespace of objects that name none
	prune    bool
	lookback time.Duration
	version  string
	res      *planResult

	configMaps map[types.NamespacedName]*corev1.ConfigMap // cluster ConfigMaps read (nil: absent)
	filesCM    map[types.NamespacedName]*corev1.ConfigMap
}

// policySet is the policies of one namespace, by name.
type policySet map[string]*v1alpha1.OrgTrustPolicy

func (pl *planner) run(ctx context.Context, objs []fileObject) error {
	filePolicies := map[string]policySet{} // namespace → name → policy
	fileInstances := map[types.NamespacedName]*v1alpha1.MISPInstance{}
	pl.filesCM = map[types.NamespacedName]*corev1.ConfigMap{}
	for _, fo := range objs {
		u := fo.obj
		if u.GetNamespace() == "" {
			u.SetNamespace(pl.ns)
		}
		gvk := u.GroupVersionKind()
		var typed client.Object
		switch {
		case gvk.Group == v1alpha1.GroupVersion.Group && gvk.Kind == "OrgTrustPolicy":
			typed = &v1alpha1.OrgTrustPolicy{}
		case gvk.Group == v1alpha1.GroupVersion.Group && gvk.Kind == "MISPInstance":
			typed = &v1alpha1.MISPInstance{}
		case gvk.Group == "" && gvk.Kind == "ConfigMap":
			typed = &corev1.ConfigMap{}
		default:
			pl.res.Notes = append(pl.res.Notes, fmt.Sprintf("%s: %s %s ignored (plan covers OrgTrustPolicy, MISPInstance and ConfigMap)", fo.source, gvk.Kind, u.GetName()))
			continue
		}
		change := objectChange{Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName(), Source: fo.source}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, typed); err != nil {
			change.Action, change.Error = "invalid", err.Error()
			pl.res.Objects = append(pl.res.Objects, change)
			continue
		}
		// Validation as the apiserver does it on apply: schema, CEL rules, strict fields.
		u.SetResourceVersion("")
		delete(u.Object, "status")
		if err := pl.kc.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.ForceOwnership, client.FieldOwner(planFieldManager)); err != nil {
			// The apiserver's answer about the object (schema, CEL rules, fields not in the
			// schema — which it reports as a 500 —, a missing namespace) makes it invalid;
			// not reaching it or not being allowed to ask stops the plan.
			var status apierrors.APIStatus
			if !errors.As(err, &status) || apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) || apierrors.IsTooManyRequests(err) ||
				apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsServiceUnavailable(err) {
				return fmt.Errorf("server-side dry-run of %s %s/%s: %w", gvk.Kind, u.GetNamespace(), u.GetName(), err)
			}
			change.Action, change.Error = "invalid", err.Error()
			pl.res.Objects = append(pl.res.Objects, change)
			continue
		}
		key := client.ObjectKeyFromObject(typed)
		switch t := typed.(type) {
		case *v1alpha1.OrgTrustPolicy:
			if filePolicies[key.Namespace] == nil {
				filePolicies[key.Namespace] = policySet{}
			}
			filePolicies[key.Namespace][key.Name] = t
			var cur v1alpha1.OrgTrustPolicy
			change.Action = pl.actionFor(ctx, key, &cur, func() bool { return equality.Semantic.DeepEqual(cur.Spec, t.Spec) })
			if change.Action == "update" && equality.Semantic.DeepEqual(sortedOrgs(cur.Spec), sortedOrgs(t.Spec)) {
				// organisations is a map keyed by UUID: another order changes nothing.
				change.Action = "reordered"
			}
		case *v1alpha1.MISPInstance:
			fileInstances[key] = t
			var cur v1alpha1.MISPInstance
			change.Action = pl.actionFor(ctx, key, &cur, func() bool { return equality.Semantic.DeepEqual(cur.Spec, t.Spec) })
		case *corev1.ConfigMap:
			pl.filesCM[key] = t
			var cur corev1.ConfigMap
			change.Action = pl.actionFor(ctx, key, &cur, func() bool {
				return equality.Semantic.DeepEqual(cur.Data, t.Data) && equality.Semantic.DeepEqual(cur.BinaryData, t.BinaryData)
			})
		}
		if strings.HasPrefix(change.Action, "error: ") {
			return errors.New(strings.TrimPrefix(change.Action, "error: "))
		}
		pl.res.Objects = append(pl.res.Objects, change)
	}
	sort.SliceStable(pl.res.Objects, func(i, j int) bool { return objectLess(pl.res.Objects[i], pl.res.Objects[j]) })
	for _, c := range pl.res.Objects {
		if c.Action == "invalid" {
			pl.res.Errors = append(pl.res.Errors, fmt.Sprintf("%s %s/%s is invalid", c.Kind, c.Namespace, c.Name))
		}
	}
	if len(pl.res.Errors) > 0 {
		// Nothing is planned from files the apiserver refuses.
		pl.finish()
		return nil
	}

	namespaces := map[string]bool{}
	for ns := range filePolicies {
		namespaces[ns] = true
	}
	for k := range fileInstances {
		namespaces[k.Namespace] = true
	}
	for k := range pl.filesCM {
		namespaces[k.Namespace] = true
	}
	for _, ns := range sortedKeys(namespaces) {
		if err := pl.planNamespace(ctx, ns, filePolicies[ns], fileInstances); err != nil {
			return err
		}
	}
	pl.finish()
	return nil
}

func objectLess(a, b objectChange) bool {
	return a.Kind+"/"+a.Namespace+"/"+a.Name < b.Kind+"/"+b.Namespace+"/"+b.Name
}

// objectChanges reports whether applying the object changes the cluster in a way that
// matters: a reordered organisation list does not.
func objectChanges(action string) bool {
	return action != "unchanged" && action != "invalid" && action != "reordered"
}

// sortedOrgs is spec with its organisations in UUID order.
func sortedOrgs(spec v1alpha1.OrgTrustPolicySpec) v1alpha1.OrgTrustPolicySpec {
	s := *spec.DeepCopy()
	sort.SliceStable(s.Organisations, func(i, j int) bool {
		return trust.NormalizeUUID(s.Organisations[i].UUID) < trust.NormalizeUUID(s.Organisations[j].UUID)
	})
	return s
}

// actionFor compares a file's object with the cluster's.
func (pl *planner) actionFor(ctx context.Context, key types.NamespacedName, cur client.Object, same func() bool) string {
	if err := pl.kc.Get(ctx, key, cur); err != nil {
		if apierrors.IsNotFound(err) {
			return "create"
		}
		return fmt.Sprintf("error: read %s: %v", key, err)
	}
	if same() {
		return "unchanged"
	}
	return "update"
}

func (pl *planner) finish() {
	r := pl.res
	sort.SliceStable(r.Objects, func(i, j int) bool { return objectLess(r.Objects[i], r.Objects[j]) })
	for _, c := range r.Objects {
		if objectChanges(c.Action) {
			r.Changes = true
		}
	}
	for _, l := range r.Warninglists {
		if l.Action != "unchanged" {
			r.Changes = true
		}
	}
	if len(r.Moves) > 0 || len(r.Events) > 0 {
		r.Changes = true
	}
	for _, c := range r.Conflicts {
		if c.New {
			r.Changes = true
		}
	}
}

// planNamespace plans every MISPInstance of ns whose policies the files touch.
func (pl *planner) planNamespace(ctx context.Context, ns string, files policySet, fileInstances map[types.NamespacedName]*v1alpha1.MISPInstance) error {
	var list v1alpha1.OrgTrustPolicyList
	if err := pl.kc.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("list OrgTrustPolicies in %s: %w", ns, err)
	}
	current := policySet{}
	for i := range list.Items {
		if p := &list.Items[i]; p.DeletionTimestamp.IsZero() {
			current[p.Name] = p
		}
	}
	// The instances concerned: named by a file policy, by the cluster version of one,
	// by a file instance, or by a policy reading a file ConfigMap.
	instances := map[string]bool{}
	for name, p := range files {
		instances[p.Spec.InstanceRef.Name] = true
		if c := current[name]; c != nil {
			instances[c.Spec.InstanceRef.Name] = true
		}
	}
	for k := range fileInstances {
		if k.Namespace == ns {
			instances[k.Name] = true
		}
	}
	for k := range pl.filesCM {
		if k.Namespace != ns {
			continue
		}
		for _, p := range current {
			for _, ref := range p.Spec.OrganisationsFrom {
				if ref.Name == k.Name {
					instances[p.Spec.InstanceRef.Name] = true
				}
			}
		}
	}
	next := policySet{}
	for name, p := range current {
		next[name] = p
	}
	for name, p := range files {
		next[name] = p
	}
	if pl.prune {
		for name, p := range current {
			if files[name] == nil && instances[p.Spec.InstanceRef.Name] {
				delete(next, name)
				pl.res.Objects = append(pl.res.Objects, objectChange{Kind: "OrgTrustPolicy", Namespace: ns, Name: name, Action: "delete",
					Source: "--prune: not in the files"})
			}
		}
	}
	for _, inst := range sortedKeys(instances) {
		if err := pl.planInstance(ctx, types.NamespacedName{Namespace: ns, Name: inst}, ofInstance(current, inst), ofInstance(next, inst)); err != nil {
			return err
		}
	}
	return nil
}

func ofInstance(set policySet, instance string) []*v1alpha1.OrgTrustPolicy {
	var out []*v1alpha1.OrgTrustPolicy
	for _, name := range sortedKeys(set) {
		if p := set[name]; p.Spec.InstanceRef.Name == instance {
			out = append(out, p)
		}
	}
	return out
}

// side is one state of an instance's policies: now, or after the files are applied.
type side struct {
	policies []*v1alpha1.OrgTrustPolicy
	orgs     map[string][]trust.Org // policy key → effective organisations
	missing  map[string]bool        // policy key → an organisationsFrom source is missing or not opted in
	cands    map[string]trust.Candidate
	res      trust.Resolution
	sharers  trust.Resolution // trust.ResolveSharers: which list holds each sharer entry
	snap     *index.Snapshot
	names    map[string]string // org uuid → a name some policy gives it
}

func (pl *planner) side(ctx context.Context, policies []*v1alpha1.OrgTrustPolicy, withFiles bool) (*side, error) {
	s := &side{policies: policies, orgs: map[string][]trust.Org{}, missing: map[string]bool{}, cands: map[string]trust.Candidate{}, names: map[string]string{}}
	var cands []trust.Candidate
	for _, p := range policies {
		orgs, problems, err := trust.EffectiveOrgsFrom(p, pl.source(ctx, p.Namespace, withFiles))
		if err != nil {
			return nil, fmt.Errorf("organisations of OrgTrustPolicy %s: %w", trust.Key(p), err)
		}
		key := trust.Key(p)
		s.orgs[key] = orgs
		for _, pr := range problems {
			// As the controller reads them: a whole source missing, or a ConfigMap that
			// does not opt in (trust.AllowLabel), leaves the list as it is.
			if pr.Unusable() {
				s.missing[key] = true
			}
		}
		if withFiles {
			for _, pr := range problems {
				pl.res.Notes = append(pl.res.Notes, fmt.Sprintf("OrgTrustPolicy %s: %s", key, pr))
			}
		}
		for _, o := range orgs {
			if o.Name != "" && s.names[o.UUID] == "" {
				s.names[o.UUID] = o.Name
			}
		}
		sharers, _ := trust.EffectiveSharers(p)
		c := trust.Candidate{Key: key, Priority: trust.Priority(p), SourceReliability: p.Spec.SourceReliability, Orgs: orgs, Sharers: sharers}
		s.cands[key] = c
		cands = append(cands, c)
	}
	s.res = trust.Resolve(cands)
	s.sharers = trust.ResolveSharers(cands)
	s.snap = index.Build(policies, func(p *v1alpha1.OrgTrustPolicy) []trust.Org { return s.orgs[trust.Key(p)] })
	return s, nil
}

// source reads organisationsFrom ConfigMaps: the files' first when withFiles, else the
// cluster's (each read once). As the controller does, a ConfigMap that does not opt in
// (trust.AllowLabel) gives no organisations.
func (pl *planner) source(ctx context.Context, ns string, withFiles bool) trust.SourceFunc {
	return func(ref v1alpha1.ConfigMapKeyReference) (trust.OrgSource, error) {
		key := types.NamespacedName{Namespace: ns, Name: ref.Name}
		cm := pl.filesCM[key]
		if cm == nil || !withFiles {
			var ok bool
			if cm, ok = pl.configMaps[key]; !ok {
				var c corev1.ConfigMap
				switch err := pl.kc.Get(ctx, key, &c); {
				case apierrors.IsNotFound(err):
					cm = nil
				case err != nil:
					return trust.OrgSource{}, err
				default:
					cm = &c
				}
				pl.configMaps[key] = cm
			}
		}
		if cm == nil {
			return trust.MissingSource(ref), nil
		}
		if !trust.Allowed(cm) {
			return trust.NotAllowedSource(ref, ns), nil
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			return trust.MissingSource(ref), nil
		}
		orgs, problems := trust.ParseOrgList(trust.ConfigMapSource(ref), v)
		return trust.OrgSource{Orgs: orgs, Problems: problems}, nil
	}
}

func (pl *planner) planInstance(ctx context.Context, inst types.NamespacedName, curPolicies, nextPolicies []*v1alpha1.OrgTrustPolicy) error {
	cur, err := pl.side(ctx, curPolicies, false)
	if err != nil {
		return err
	}
	next, err := pl.side(ctx, nextPolicies, true)
	if err != nil {
		return err
	}
	name := func(uuid string) string {
		if n := next.names[uuid]; n != "" {
			return n
		}
		return cur.names[uuid]
	}
	instKey := inst.String()

	// Organisations whose winning policy changes, and why.
	orgs := map[string]bool{}
	for o := range cur.res.Winner {
		orgs[o] = true
	}
	for o := range next.res.Winner {
		orgs[o] = true
	}
	for _, o := range sortedKeys(orgs) {
		from, to := cur.res.Winner[o], next.res.Winner[o]
		if from == to {
			continue
		}
		pl.res.Moves = append(pl.res.Moves, orgMove{Instance: instKey, UUID: o, Name: name(o), From: from, To: to, Reason: moveReason(o, from, to, next)})
	}
	// Conflicts after the change; New when the overlap did not exist before.
	before := map[string]bool{}
	for pol, losses := range cur.res.Losses {
		for _, l := range losses {
			before[pol+"|"+l.OrgUUID+"|"+l.Winner] = true
		}
	}
	for _, pol := range sortedKeys(next.res.Losses) {
		for _, l := range next.res.Losses[pol] {
			pl.res.Conflicts = append(pl.res.Conflicts, conflictRow{Instance: instKey, UUID: l.OrgUUID, Name: name(l.OrgUUID), Policy: pol, Winner: l.Winner,
				Reason: trust.Why(next.cands[l.Winner], next.cands[pol]), New: !before[pol+"|"+l.OrgUUID+"|"+l.Winner]})
		}
	}

	// MISP: the instance must exist with its Secret; a first PR that adds it is planned
	// without MISP.
	var mi v1alpha1.MISPInstance
	if err := pl.kc.Get(ctx, inst, &mi); err != nil {
		if apierrors.IsNotFound(err) {
			pl.res.Notes = append(pl.res.Notes, fmt.Sprintf("MISPInstance %s is not in the cluster yet: its warninglists and events are not planned", inst))
			return nil
		}
		return fmt.Errorf("read MISPInstance %s: %w", inst, err)
	}
	api, err := mispForInstance(ctx, pl.kc, &mi, pl.version)
	if err != nil {
		pl.res.Errors = append(pl.res.Errors, fmt.Sprintf("MISPInstance %s: %v", inst, err))
		return nil
	}
	if err := pl.planLists(ctx, api, &mi, instKey, cur, next); err != nil {
		pl.res.Errors = append(pl.res.Errors, fmt.Sprintf("MISPInstance %s: %v", inst, err))
		return nil
	}
	lookback := pl.lookback
	if lookback <= 0 {
		lookback = catchup.DefaultLookback
		if c := mi.Spec.Curation; c != nil && c.CatchUp != nil && c.CatchUp.Lookback != nil && c.CatchUp.Lookback.Duration > 0 {
			lookback = c.CatchUp.Lookback.Duration
		}
	}
	since := time.Now().Add(-lookback).Truncate(time.Second)
	pl.res.Since[instKey] = since
	if err := pl.planEvents(ctx, api, instKey, cur, next, since, name); err != nil {
		pl.res.Errors = append(pl.res.Errors, fmt.Sprintf("MISPInstance %s: %v", inst, err))
	}
	return nil
}

// moveReason says why an organisation's winning policy changes, with the words of the
// precedence rule (trust.Why).
func moveReason(org, from, to string, next *side) string {
	var parts []string
	if from != "" {
		if c, ok := next.cands[from]; !ok {
			parts = append(parts, from+" is deleted")
		} else if !hasOrg(c.Orgs, org) {
			parts = append(parts, from+" no longer lists it")
		}
	}
	if to == "" {
		if len(parts) == 0 {
			parts = append(parts, "no policy lists it")
		}
		return strings.Join(parts, "; ") + "; untrusted from now on (tags already attached stay)"
	}
	var rivals []string
	for _, key := range sortedKeys(next.cands) {
		if key != to && hasOrg(next.cands[key].Orgs, org) {
			rivals = append(rivals, fmt.Sprintf("over %s (%s)", key, trust.Why(next.cands[to], next.cands[key])))
		}
	}
	if len(rivals) == 0 {
		parts = append(parts, "only "+to+" lists it")
	} else {
		parts = append(parts, to+" wins "+strings.Join(rivals, ", "))
	}
	return strings.Join(parts, "; ")
}

func hasOrg(orgs []trust.Org, uuid string) bool {
	i := sort.Search(len(orgs), func(i int) bool { return orgs[i].UUID >= uuid })
	return i < len(orgs) && orgs[i].UUID == uuid
}

// planLists compares each warninglist in MISP with the one the controller will keep.
func (pl *planner) planLists(ctx context.Context, api mispReader, mi *v1alpha1.MISPInstance, inst string, cur, next *side) error {
	won := func(s *side, key string) []trust.Org {
		var out []trust.Org
		for _, o := range s.orgs[key] {
			if s.res.Winner[o.UUID] == key {
				out = append(out, o)
			}
		}
		return out
	}
	for _, p := range next.policies {
		key := trust.Key(p)
		wonSharers := trust.WonSharers(next.sharers, next.cands[key])
		want := controllers.DesiredWarninglist(p, mi, won(next, key), wonSharers)
		lc := listChange{Instance: inst, Policy: key, Warninglist: want.Name}
		got, err := pl.readList(ctx, api, want.Name)
		switch {
		case err != nil:
			return err
		case next.missing[key]:
			lc.Action, lc.Detail = "blocked", "an organisationsFrom ConfigMap or key is missing, or the ConfigMap lacks the label misptrust.io/allow: \"true\": the controller leaves the list unchanged until it is there"
			if got != nil {
				lc.ID = got.ID
			}
		case got == nil:
			lc.Action, lc.Added = "create", entryStrings(want.Entries)
		case got.Default:
			lc.Action, lc.ID, lc.Detail = "blocked", got.ID, "a default (bundled) MISP warninglist has this name; the controller never takes one over"
		default:
			lc.ID = got.ID
			lc.Added, lc.Removed = entryDiff(got.Entries, want.Entries)
			lc.Detail = controllers.WarninglistDifference(got, p, mi, won(next, key), wonSharers)
			ns, n, managed := controllers.ManagingPolicy(got.Description)
			switch {
			case !managed || ns+"/"+n != key:
				lc.Action = "adopt"
				if lc.Detail == "" {
					lc.Detail = "no MISP write"
				}
			case lc.Detail != "":
				lc.Action = "update"
			default:
				lc.Action = "unchanged"
			}
		}
		pl.res.Warninglists = append(pl.res.Warninglists, lc)
	}
	for _, p := range cur.policies {
		key := trust.Key(p)
		if _, kept := next.cands[key]; kept {
			continue
		}
		name := trust.WarninglistName(p)
		got, err := pl.readList(ctx, api, name)
		if err != nil {
			return err
		}
		lc := listChange{Instance: inst, Policy: key, Warninglist: name}
		if got != nil {
			lc.ID = got.ID
		}
		switch {
		case got == nil:
			lc.Action, lc.Detail = "unchanged", "the policy is deleted and MISP has no such list"
		case trust.DeletionPolicy(p) == v1alpha1.DeletionPolicyDelete:
			lc.Action, lc.Removed = "delete", entryStrings(got.Entries)
			lc.Detail = "the policy is deleted (deletionPolicy: Delete)"
		default:
			lc.Action, lc.Detail = "retain", "the policy is deleted (deletionPolicy: Retain): the list stays in MISP as it is, no longer curated"
		}
		pl.res.Warninglists = append(pl.res.Warninglists, lc)
	}
	return nil
}

// readList finds a list by name and reads its entries; nil when MISP has none.
func (pl *planner) readList(ctx context.Context, api mispReader, name string) (*misp.Warninglist, error) {
	found, err := api.FindWarninglist(ctx, name)
	if errors.Is(err, misp.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find warninglist %q: %w", name, err)
	}
	wl, err := api.ViewWarninglist(ctx, found.ID)
	if err != nil {
		return nil, fmt.Errorf("read warninglist %s (%q): %w", found.ID, name, err)
	}
	return wl, nil
}

func entryString(e misp.WarninglistEntry) string {
	if e.Comment == "" {
		return e.Value
	}
	return e.Value + " # " + e.Comment
}

func entryStrings(entries []misp.WarninglistEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = entryString(e)
	}
	sort.Strings(out)
	return out
}

// entryDiff is the set difference of entries (value and comment: a renamed
// organisation shows as one removed and one added entry).
func entryDiff(have, want []misp.WarninglistEntry) (added, removed []string) {
	h, w := entryStrings(have), entryStrings(want)
	for _, e := range w {
		if _, found := slices.BinarySearch(h, e); !found {
			added = append(added, e)
		}
	}
	for _, e := range h {
		if _, found := slices.BinarySearch(w, e); !found {
			removed = append(removed, e)
		}
	}
	return added, removed
}

// planEvents lists the events in MISP whose curation the change alters: those of the
// organisations the curator re-curates after it (index.Diff: they gained a policy or
// their policy's tags or publish flag changed) with the engine's own plan for them
// (engine.PlanFor), and those of organisations that lose their trust (no call: the
// tags stay).
func (pl *planner) planEvents(ctx context.Context, api mispReader, inst string, cur, next *side, since time.Time, name func(string) string) error {
	recurated := index.Diff(cur.snap, next.snap)
	set := map[string]bool{}
	for _, o := range recurated {
		set[o] = true
	}
	for o := range cur.res.Winner {
		if _, still := next.res.Winner[o]; !still {
			set[o] = true
		}
	}
	if len(set) == 0 {
		return nil
	}
	events, err := searchEvents(ctx, api, sortedKeys(set), since)
	if err != nil {
		return err
	}
	for _, m := range events {
		if !m.Locked {
			continue // created on this instance: never curated
		}
		oldPol, wasTrusted := cur.snap.Lookup(m.OrgcUUID)
		newPol, trusted := next.snap.Lookup(m.OrgcUUID)
		row := eventImpact{Instance: inst, ID: m.ID, UUID: m.UUID, OrgUUID: m.OrgcUUID, OrgName: m.OrgcName, Timestamp: m.Timestamp, Publish: "no"}
		if row.OrgName == "" {
			row.OrgName = name(m.OrgcUUID)
		}
		if wasTrusted {
			row.From = oldPol.Key
		}
		if !trusted {
			row.Effect = "untrusted from now on: keeps its tags, no MISP call"
			pl.res.Events = append(pl.res.Events, row)
			continue
		}
		row.To = newPol.Key
		plan := engine.PlanFor(newPol, m)
		if plan.Empty() {
			continue // already in the new policy's state
		}
		row.Attach, row.Remove = plan.Attach, plan.Remove
		switch {
		case plan.Publish:
			row.Publish = "yes"
		case plan.PublishIfUnpublished:
			row.Publish = "if unpublished"
		}
		row.Effect = effect(plan)
		pl.res.Events = append(pl.res.Events, row)
	}
	return nil
}

// searchEvents pages through the events of orgs changed or published since since, by
// both clocks, as a catch-up re-curation does (package catchup): one query per
// organisation when there are few, else a full scan filtered here.
func searchEvents(ctx context.Context, api mispReader, orgs []string, since time.Time) ([]misp.EventMeta, error) {
	var queries []misp.EventSearch
	perOrg := len(orgs) <= catchup.DefaultMaxOrgQueries
	for _, clock := range []func(*misp.EventSearch){
		func(q *misp.EventSearch) { q.Since = since },
		func(q *misp.EventSearch) { q.PublishedSince = since },
	} {
		if perOrg {
			for _, o := range orgs {
				q := misp.EventSearch{OrgUUIDs: []string{o}, Limit: searchPageSize}
				clock(&q)
				queries = append(queries, q)
			}
		} else {
			q := misp.EventSearch{Limit: searchPageSize}
			clock(&q)
			queries = append(queries, q)
		}
	}
	want := map[string]bool{}
	for _, o := range orgs {
		want[o] = true
	}
	seen := map[string]bool{}
	var out []misp.EventMeta
	for _, q := range queries {
		for q.Page = 1; ; q.Page++ {
			page, err := api.SearchEventsPage(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("search events since %s: %w", since.UTC().Format(time.RFC3339), err)
			}
			for _, m := range page.Events {
				if want[m.OrgcUUID] && !seen[m.UUID] {
					seen[m.UUID] = true
					out = append(out, m)
				}
			}
			// Paging as catch-up pages (catchup.Runner.scan): a total when MISP sends one,
			// else a short page ends it.
			if len(page.Events) > q.Limit || (page.Total >= 0 && q.Page*q.Limit >= page.Total) || (page.Total < 0 && len(page.Events) < q.Limit) {
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return lessID(out[i].ID, out[j].ID) })
	return out, nil
}

// lessID orders numeric MISP ids as numbers.
func lessID(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// effect says in words what a plan does to an event's grade and publication.
func effect(p engine.Plan) string {
	var added, removed, other []string
	for _, t := range p.Attach {
		if isGradeTag(t) {
			added = append(added, shortTag(t))
		} else {
			other = append(other, "+"+shortTag(t))
		}
	}
	completes := false
	for _, t := range p.Remove {
		switch {
		case isGradeTag(t):
			removed = append(removed, shortTag(t))
		case strings.EqualFold(t, trust.TagWorkflowIncomplete):
			completes = true
		default:
			other = append(other, "-"+shortTag(t))
		}
	}
	var parts []string
	switch {
	case len(added) > 0 && len(removed) > 0:
		parts = append(parts, "changes grade "+join(removed)+" → "+join(added))
	case len(added) > 0:
		parts = append(parts, "gains "+join(added))
	case len(removed) > 0:
		parts = append(parts, "loses "+join(removed))
	}
	parts = append(parts, other...)
	if completes {
		parts = append(parts, "incomplete → complete")
	}
	switch {
	case p.Publish:
		parts = append(parts, "published")
	case p.PublishIfUnpublished:
		parts = append(parts, "published again if the tag removal unpublishes it")
	}
	return strings.Join(parts, "; ")
}

func isGradeTag(t string) bool { return strings.HasPrefix(strings.ToLower(t), "admiralty-scale:") }

// shortTag drops the admiralty-scale namespace, which every grade shares.
func shortTag(t string) string {
	if isGradeTag(t) {
		return t[len("admiralty-scale:"):]
	}
	return t
}

func (r *planResult) printTable(w io.Writer) {
	section := func(title string) { fmt.Fprintf(w, "\n%s\n", title) }
	fmt.Fprintln(w, "Objects (validated by a server-side dry-run)")
	t := newTable(w, "KIND", "NAME", "ACTION", "SOURCE")
	for _, o := range r.Objects {
		t.row(o.Kind, o.Namespace+"/"+o.Name, o.Action, o.Source)
	}
	t.flush()
	for _, o := range r.Objects {
		if o.Error != "" {
			fmt.Fprintf(w, "  %s %s/%s: %s\n", o.Kind, o.Namespace, o.Name, o.Error)
		}
	}
	if len(r.Moves) > 0 {
		section("Organisations whose policy changes")
		t = newTable(w, "INSTANCE", "ORGANISATION", "NAME", "FROM", "TO", "WHY")
		for _, m := range r.Moves {
			t.row(m.Instance, m.UUID, m.Name, orUntrusted(m.From), orUntrusted(m.To), m.Reason)
		}
		t.flush()
	}
	if len(r.Conflicts) > 0 {
		section("Conflicts (organisations listed by several policies; the loser reports them in its Conflicts condition)")
		t = newTable(w, "INSTANCE", "ORGANISATION", "NAME", "LISTED BY", "WON BY", "WHY", "NEW")
		for _, c := range r.Conflicts {
			t.row(c.Instance, c.UUID, c.Name, c.Policy, c.Winner, c.Reason, yesNo(c.New))
		}
		t.flush()
	}
	if len(r.Warninglists) > 0 {
		section("Warninglists in MISP")
		t = newTable(w, "INSTANCE", "POLICY", "WARNINGLIST", "ID", "ACTION", "+", "-", "DETAIL")
		for _, l := range r.Warninglists {
			t.row(l.Instance, l.Policy, l.Warninglist, l.ID, l.Action, fmt.Sprint(len(l.Added)), fmt.Sprint(len(l.Removed)), l.Detail)
		}
		t.flush()
		for _, l := range r.Warninglists {
			if len(l.Added)+len(l.Removed) == 0 || l.Action == "create" || l.Action == "delete" {
				continue
			}
			fmt.Fprintf(w, "  %s:\n", l.Warninglist)
			for _, e := range l.Added {
				fmt.Fprintf(w, "    + %s\n", e)
			}
			for _, e := range l.Removed {
				fmt.Fprintf(w, "    - %s\n", e)
			}
		}
	}
	for _, inst := range sortedKeys(r.Since) {
		section(fmt.Sprintf("Events of %s changed or published since %s whose curation changes", inst, r.Since[inst].UTC().Format(time.RFC3339)))
		t = newTable(w, "EVENT", "UUID", "CREATOR ORG", "FROM", "TO", "EFFECT", "PUBLISH")
		n := 0
		for _, e := range r.Events {
			if e.Instance != inst {
				continue
			}
			n++
			t.row(e.ID, e.UUID, e.OrgName, orUntrusted(e.From), orUntrusted(e.To), e.Effect, e.Publish)
		}
		if n == 0 {
			t.row("(none)", "", "", "", "", "", "")
		}
		t.flush()
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	changed := 0
	for _, o := range r.Objects {
		if objectChanges(o.Action) {
			changed++
		}
	}
	lists := 0
	for _, l := range r.Warninglists {
		if l.Action != "unchanged" {
			lists++
		}
	}
	fmt.Fprintf(w, "\nPlan: %s, %s, %s, %s, %s.\n", plural(changed, "object change"), plural(len(r.Moves), "organisation move"),
		plural(len(r.Conflicts), "conflict"), plural(lists, "warninglist change"), plural(len(r.Events), "event")+" affected")
}

func orUntrusted(policy string) string {
	if policy == "" {
		return "(untrusted)"
	}
	return policy
}
