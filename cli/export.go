package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/controllers"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// Limits of the objects export writes.
const (
	// maxInline is the CRD's cap on spec.organisations (MaxItems=500): longer lists go to
	// ConfigMaps referenced by organisationsFrom.
	maxInline = 500
	// maxConfigMapData keeps each ConfigMap small enough for a client-side `kubectl apply`,
	// which copies the object into an annotation limited to 256 KiB.
	maxConfigMapData = 200 << 10
	// maxOrganisationsFrom is the CRD's cap on spec.organisationsFrom (MaxItems=32).
	maxOrganisationsFrom = 32
	// maxOrgName is the CRD's cap on an organisation name (MaxLength=128).
	maxOrgName = 128
	// configMapKey holds the organisations in every ConfigMap export writes.
	configMapKey = "organisations"
	// placeholderUUID is the entry the controller writes into a list that trusts nobody
	// (controllers/warninglist.go): it is not an organisation.
	placeholderUUID = "00000000-0000-0000-0000-000000000000"
)

// listMapping says what one warninglist becomes (--mapping file, built-in defaults for
// the original script's lists, or the --grade/--publish/--priority flags).
type listMapping struct {
	// Policy is the OrgTrustPolicy name; default derived from the list name.
	Policy                 string   `json:"policy,omitempty"`
	SourceReliability      string   `json:"sourceReliability,omitempty"`
	InformationCredibility string   `json:"informationCredibility,omitempty"`
	Publish                *bool    `json:"publish,omitempty"`
	Priority               *int32   `json:"priority,omitempty"`
	ExtraTags              []string `json:"extraTags,omitempty"`
}

// mappingFile is the --mapping file: warninglist name → mapping.
type mappingFile struct {
	Lists map[string]listMapping `json:"lists"`
}

// scriptLists are the original curation script's lists and the levels it gave them
// (the same as config/samples/).
var scriptLists = map[string]listMapping{
	"org-confidence-level-high":   {Policy: "high", SourceReliability: "a", Publish: ptr(true), Priority: ptr[int32](100)},
	"org-confidence-level-medium": {Policy: "medium", SourceReliability: "c", Publish: ptr(false), Priority: ptr[int32](50)},
}

func ptr[T any](v T) *T { return &v }

// exportedList is one warninglist export turned into a policy.
type exportedList struct {
	Warninglist       string   `json:"warninglist"`
	ID                string   `json:"id"`
	Entries           int      `json:"entries"`
	Policy            string   `json:"policy"`
	SourceReliability string   `json:"sourceReliability"`
	Publish           bool     `json:"publish"`
	Priority          int32    `json:"priority"`
	Organisations     int      `json:"organisations"`
	ConfigMaps        []string `json:"configMaps,omitempty"`
	// AdoptionWrites is what the controller will write when it adopts the list ("" none),
	// as controllers.WarninglistDifference computes it.
	AdoptionWrites string   `json:"adoptionWrites,omitempty"`
	Notes          []string `json:"notes,omitempty"`
}

type skippedList struct {
	Warninglist string `json:"warninglist"`
	Reason      string `json:"reason"`
}

type exportOptions struct {
	kube        kubeFlags
	misp        mispFlags
	instance    string
	lists       []string
	mapping     string
	grade       string
	credibility string
	publish     bool
	priority    int32
	output      string
}

func runExport(ctx context.Context, args []string, io IO) (int, error) {
	var o exportOptions
	fs := newFlags("export", io, "export --instance [namespace/]name [--list NAME]... [--mapping FILE] [--grade a..g] [--publish] [-o table|yaml|json]")
	o.kube.bind(fs)
	o.misp.bind(fs)
	fs.StringVar(&o.instance, "instance", "", "MISPInstance ([namespace/]name) the policies will name; its Secret reaches MISP unless --url is given.")
	fs.StringArrayVar(&o.lists, "list", nil, "Warninglist to export (repeatable); default every custom list whose entries are organisation UUIDs.")
	fs.StringVar(&o.mapping, "mapping", "", "YAML file: lists: {<warninglist>: {policy, sourceReliability, informationCredibility, publish, priority, extraTags}}.")
	fs.StringVar(&o.grade, "grade", "", "sourceReliability (a..g) of lists the mapping does not name (the script's lists default to a and c).")
	fs.StringVar(&o.credibility, "credibility", "", "informationCredibility (1..6) of lists the mapping does not name.")
	fs.BoolVar(&o.publish, "publish", false, "Publish events of lists the mapping does not name.")
	fs.Int32Var(&o.priority, "priority", 0, "Priority of lists the mapping does not name.")
	bindOutput(fs, &o.output)
	if err := fs.Parse(args); err != nil {
		return ExitError, err
	}
	if fs.NArg() > 0 {
		return ExitError, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := checkOutput(o.output); err != nil {
		return ExitError, err
	}
	inst, err := instanceRef(o.instance, o.kube.Namespace())
	if err != nil {
		return ExitError, err
	}
	defaults := listMapping{SourceReliability: o.grade, InformationCredibility: o.credibility}
	if fs.Changed("publish") {
		defaults.Publish = &o.publish
	}
	if fs.Changed("priority") {
		defaults.Priority = &o.priority
	}
	mappings := mappingFile{}
	if o.mapping != "" {
		b, err := os.ReadFile(o.mapping)
		if err != nil {
			return ExitError, fmt.Errorf("read --mapping: %w", err)
		}
		if err := yaml.UnmarshalStrict(b, &mappings); err != nil {
			return ExitError, fmt.Errorf("--mapping %s: %w", o.mapping, err)
		}
	}

	var api mispReader
	// The MISPInstance, when read from the cluster: its uid is part of the
	// description the controller writes (nil with --url: not known yet).
	var instObj *v1alpha1.MISPInstance
	source := ""
	if o.misp.set() {
		if api, err = o.misp.client(io.Version); err != nil {
			return ExitError, err
		}
		source = "--url"
	} else {
		kc, err := o.kube.connect()
		if err != nil {
			return ExitError, err
		}
		var mi v1alpha1.MISPInstance
		if err := kc.Get(ctx, inst, &mi); err != nil {
			if apierrors.IsNotFound(err) {
				return ExitError, fmt.Errorf("MISPInstance %s does not exist; to export before installing, reach MISP with --url and --api-key-file", inst)
			}
			return ExitError, fmt.Errorf("read MISPInstance %s: %w", inst, err)
		}
		if api, err = mispForInstance(ctx, kc, &mi, io.Version); err != nil {
			return ExitError, err
		}
		source = "MISPInstance " + inst.String()
		instObj = &mi
	}

	ex := exporter{api: api, inst: inst, instObj: instObj, named: o.lists, mappings: mappings.Lists, defaults: defaults}
	res, err := ex.run(ctx)
	if err != nil {
		return ExitError, err
	}
	switch o.output {
	case formatYAML:
		err = writeManifests(io.Out, res.objects, fmt.Sprintf(
			"OrgTrustPolicies exported from MISP (%s) by `%s export`: warninglists %s.\n"+
				"Commit them next to the MISPInstance %s; the controller adopts each list by name.",
			source, io.Prog, join(res.names()), inst))
	case formatJSON:
		err = printData(io.Out, formatJSON, map[string]any{"apiVersion": "v1", "kind": "List", "items": res.objects})
	default:
		res.printTable(io.Out, io.Prog)
	}
	if err != nil {
		return ExitError, err
	}
	if len(res.Lists) == 0 {
		return ExitError, errors.New("no warninglist of organisation UUIDs to export")
	}
	return ExitOK, nil
}

type exporter struct {
	api      mispReader
	inst     types.NamespacedName
	instObj  *v1alpha1.MISPInstance // nil when MISP is reached with --url
	named    []string
	mappings map[string]listMapping
	defaults listMapping
}

type exportResult struct {
	Lists   []exportedList `json:"lists"`
	Skipped []skippedList  `json:"skipped,omitempty"`
	objects []map[string]any
}

func (r *exportResult) names() []string {
	var out []string
	for _, l := range r.Lists {
		out = append(out, l.Warninglist)
	}
	return out
}

// exportPolicy is one list on its way to becoming objects.
type exportPolicy struct {
	wl         *misp.Warninglist
	policy     *v1alpha1.OrgTrustPolicy
	configMaps []*corev1.ConfigMap
	orgs       []trust.Org
	notes      []string
}

func (e *exporter) run(ctx context.Context) (*exportResult, error) {
	all, err := e.api.ListWarninglists(ctx)
	if err != nil {
		return nil, fmt.Errorf("list MISP warninglists: %w", err)
	}
	byName := map[string]misp.Warninglist{}
	for _, wl := range all {
		byName[wl.Name] = wl
	}
	res := &exportResult{}
	var candidates []misp.Warninglist
	if len(e.named) > 0 {
		for _, n := range e.named {
			wl, ok := byName[n]
			switch {
			case !ok:
				return nil, fmt.Errorf("--list %q: MISP has no warninglist of that name", n)
			case wl.Default:
				return nil, fmt.Errorf("--list %q: a default (bundled) warninglist, which the operator never takes over", n)
			}
			candidates = append(candidates, wl)
		}
	} else {
		for _, wl := range all {
			if !wl.Default {
				candidates = append(candidates, wl)
			}
		}
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].Name < candidates[j].Name })

	var out []*exportPolicy
	names := map[string]string{} // policy name → list
	for _, c := range candidates {
		explicit := len(e.named) > 0
		wl, err := e.api.ViewWarninglist(ctx, c.ID)
		if err != nil {
			return nil, fmt.Errorf("read warninglist %s (%q): %w", c.ID, c.Name, err)
		}
		ep, skip, err := e.convert(wl)
		switch {
		case err != nil:
			return nil, err
		case skip != "" && explicit:
			return nil, fmt.Errorf("--list %q: %s", wl.Name, skip)
		case skip != "":
			res.Skipped = append(res.Skipped, skippedList{Warninglist: wl.Name, Reason: skip})
			continue
		}
		if other, dup := names[ep.policy.Name]; dup {
			return nil, fmt.Errorf("warninglists %q and %q would both become OrgTrustPolicy %s/%s: name them apart in --mapping", other, wl.Name, e.inst.Namespace, ep.policy.Name)
		}
		names[ep.policy.Name] = wl.Name
		out = append(out, ep)
	}

	// What the controller will write on adoption, with the precedence rule applied over
	// the exported policies (an organisation in two lists goes to one).
	var cands []trust.Candidate
	for _, ep := range out {
		cands = append(cands, trust.Candidate{Key: trust.Key(ep.policy), Priority: trust.Priority(ep.policy), SourceReliability: ep.policy.Spec.SourceReliability, Orgs: ep.orgs})
	}
	rs := trust.Resolve(cands)
	for _, ep := range out {
		key := trust.Key(ep.policy)
		var won []trust.Org
		for _, o := range ep.orgs {
			if rs.Winner[o.UUID] == key {
				won = append(won, o)
			}
		}
		for _, l := range rs.Losses[key] {
			ep.notes = append(ep.notes, fmt.Sprintf("organisation %s is also in %s, which wins it: the controller removes it from this list", l.OrgUUID, l.Winner))
		}
		p := ep.policy
		item := exportedList{
			Warninglist: ep.wl.Name, ID: ep.wl.ID, Entries: len(ep.wl.Entries), Policy: key,
			SourceReliability: p.Spec.SourceReliability, Publish: p.Spec.Publish, Priority: trust.Priority(p),
			Organisations: len(ep.orgs), AdoptionWrites: controllers.WarninglistDifference(ep.wl, p, e.instObj, won, nil), Notes: ep.notes,
		}
		for _, cm := range ep.configMaps {
			item.ConfigMaps = append(item.ConfigMaps, cm.Name)
			res.objects = append(res.objects, manifest(cm))
		}
		res.objects = append(res.objects, manifest(p))
		res.Lists = append(res.Lists, item)
	}
	return res, nil
}

// convert turns one custom list into a policy (and ConfigMaps). skip says why the list
// is not a list of organisation UUIDs.
func (e *exporter) convert(wl *misp.Warninglist) (*exportPolicy, string, error) {
	prefix, orgs, notes, skip := parseOrgEntries(wl.Entries)
	if skip != "" {
		return nil, skip, nil
	}
	m, named := e.mappings[wl.Name]
	if !named {
		m = scriptLists[wl.Name]
		if e.defaults.SourceReliability != "" {
			m.SourceReliability, m.InformationCredibility = e.defaults.SourceReliability, e.defaults.InformationCredibility
		}
		if e.defaults.Publish != nil {
			m.Publish = e.defaults.Publish
		}
		if e.defaults.Priority != nil {
			m.Priority = e.defaults.Priority
		}
	}
	if m.SourceReliability == "" {
		return nil, "", fmt.Errorf("warninglist %q: no grade; pass --grade or give it one in --mapping", wl.Name)
	}
	name := m.Policy
	if ns, n, managed := controllers.ManagingPolicy(wl.Description); managed {
		if ns != e.inst.Namespace {
			if len(e.named) == 0 {
				return nil, fmt.Sprintf("managed by OrgTrustPolicy %s/%s, in another namespace than %s", ns, n, e.inst), nil
			}
			notes = append(notes, fmt.Sprintf("managed by OrgTrustPolicy %s/%s until now: the description will name %s", ns, n, e.inst.Namespace))
		} else if name == "" || !named {
			// The policy that manages it keeps its name, so adoption rewrites nothing.
			name = n
		}
	}
	if name == "" {
		name = policyName(wl.Name, e.inst.Namespace)
	}
	p := &v1alpha1.OrgTrustPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "OrgTrustPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.inst.Namespace},
		Spec: v1alpha1.OrgTrustPolicySpec{
			InstanceRef:            v1alpha1.InstanceReference{Name: e.inst.Name},
			WarninglistName:        wl.Name,
			Priority:               m.Priority,
			SourceReliability:      m.SourceReliability,
			InformationCredibility: m.InformationCredibility,
			ExtraTags:              m.ExtraTags,
		},
	}
	if m.Publish != nil {
		p.Spec.Publish = *m.Publish
	}
	if prefix != trust.DefaultValuePrefix {
		p.Spec.ValuePrefix = ptr(prefix)
	}
	ep := &exportPolicy{wl: wl, policy: p, notes: notes}
	if len(orgs) <= maxInline {
		for _, o := range orgs {
			p.Spec.Organisations = append(p.Spec.Organisations, v1alpha1.Organisation{UUID: o.UUID, Name: o.Name})
		}
	} else {
		cms, err := orgConfigMaps(p, orgs)
		if err != nil {
			return nil, "", fmt.Errorf("warninglist %q: %w", wl.Name, err)
		}
		ep.configMaps = cms
		for _, cm := range cms {
			p.Spec.OrganisationsFrom = append(p.Spec.OrganisationsFrom, v1alpha1.ConfigMapKeyReference{Name: cm.Name, Key: configMapKey})
		}
	}
	// The organisations as the controller will read them back (the same parser for
	// ConfigMaps), so AdoptionWrites predicts its writes exactly.
	var problems []trust.Problem
	var err error
	ep.orgs, problems, err = trust.EffectiveOrgs(p, func(ref v1alpha1.ConfigMapKeyReference) (string, bool, error) {
		for _, cm := range ep.configMaps {
			if cm.Name == ref.Name {
				v, ok := cm.Data[ref.Key]
				return v, ok, nil
			}
		}
		return "", false, nil
	})
	if err != nil || len(problems) > 0 {
		return nil, "", fmt.Errorf("warninglist %q: exported organisations do not read back: %v %v", wl.Name, err, problems)
	}
	return ep, "", nil
}

// parseOrgEntries reads entries "<prefix><organisation uuid>" (the prefix may be empty:
// the script's lists hold bare UUIDs) with the organisation's name as comment. skip says
// why the list is not such a list.
func parseOrgEntries(entries []misp.WarninglistEntry) (prefix string, orgs []trust.Org, notes []string, skip string) {
	if len(entries) == 0 {
		return "", nil, nil, "no entries"
	}
	seen := map[string]bool{}
	first := true
	for _, e := range entries {
		v := strings.TrimSpace(e.Value)
		if len(v) < 36 || !trust.IsUUID(v[len(v)-36:]) {
			return "", nil, nil, fmt.Sprintf("entry %q is not an organisation UUID (with an optional prefix such as %q)", shorten(v, 60), trust.DefaultValuePrefix)
		}
		p, u := v[:len(v)-36], trust.NormalizeUUID(v[len(v)-36:])
		switch {
		case first:
			prefix, first = p, false
			if !validPrefix.MatchString(prefix) {
				return "", nil, nil, fmt.Sprintf("prefix %q cannot be a valuePrefix (at most 64 characters, no space or #)", shorten(prefix, 70))
			}
		case p != prefix:
			return "", nil, nil, fmt.Sprintf("entries mix the prefixes %q and %q", prefix, p)
		}
		if u == placeholderUUID {
			notes = append(notes, "placeholder entry skipped (the controller writes it into a list that trusts nobody)")
			continue
		}
		if seen[u] {
			notes = append(notes, fmt.Sprintf("organisation %s is listed twice; kept once", u))
			continue
		}
		seen[u] = true
		name := orgName(e.Comment)
		if name != strings.TrimSpace(e.Comment) {
			notes = append(notes, fmt.Sprintf("the comment of %s is shortened to fit an organisation name (no #, line breaks, at most %d characters)", u, maxOrgName))
		}
		orgs = append(orgs, trust.Org{UUID: u, Name: name})
	}
	sort.Slice(orgs, func(i, j int) bool { return orgs[i].UUID < orgs[j].UUID })
	return prefix, orgs, notes, ""
}

var validPrefix = regexp.MustCompile(`^[^\s#]{0,64}$`)

// orgName fits a warninglist comment into the CRD's organisation name: no "#" nor line
// breaks (the ConfigMap line format uses them; runs of spaces are squeezed), at most 128
// characters.
func orgName(comment string) string {
	s := strings.Join(strings.Fields(strings.NewReplacer("#", " ").Replace(comment)), " ")
	if utf8.RuneCountInString(s) > maxOrgName {
		s = strings.TrimSpace(string([]rune(s)[:maxOrgName]))
	}
	return s
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

var nonName = regexp.MustCompile(`[^a-z0-9.-]+`)

// policyName derives an OrgTrustPolicy name (a DNS subdomain) from a list name; the
// controller's default list name "misp-trust-operator/<namespace>/<name>" gives <name>.
func policyName(list, namespace string) string {
	if n, ok := strings.CutPrefix(list, trust.DefaultWarninglistPrefix+"/"+namespace+"/"); ok && n != "" {
		return n
	}
	s := strings.Trim(nonName.ReplaceAllString(strings.ToLower(list), "-"), "-.")
	if len(s) > 63 {
		s = strings.Trim(s[:63], "-.")
	}
	if s == "" {
		s = "trust-list"
	}
	return s
}

// orgConfigMaps splits a long list into ConfigMaps of one key, one "uuid # name" line
// per organisation (trust.ParseOrgList), each small enough for kubectl apply.
func orgConfigMaps(p *v1alpha1.OrgTrustPolicy, orgs []trust.Org) ([]*corev1.ConfigMap, error) {
	var chunks []string
	var b strings.Builder
	for _, o := range orgs {
		line := o.UUID
		if o.Name != "" {
			line += " # " + o.Name
		}
		line += "\n"
		if b.Len()+len(line) > maxConfigMapData {
			chunks = append(chunks, b.String())
			b.Reset()
		}
		b.WriteString(line)
	}
	chunks = append(chunks, b.String())
	if len(chunks) > maxOrganisationsFrom {
		return nil, fmt.Errorf("%d organisations need %d ConfigMaps, more than the %d organisationsFrom references a policy holds: split the list", len(orgs), len(chunks), maxOrganisationsFrom)
	}
	out := make([]*corev1.ConfigMap, len(chunks))
	for i, data := range chunks {
		name := p.Name + "-organisations"
		if len(chunks) > 1 {
			name = fmt.Sprintf("%s-%d", name, i+1)
		}
		out[i] = &corev1.ConfigMap{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			// The operator reads only ConfigMaps that opt in (trust.AllowLabel).
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.Namespace, Labels: map[string]string{trust.AllowLabel: trust.AllowValue}},
			Data:       map[string]string{configMapKey: data},
		}
	}
	return out, nil
}

// manifest is an object as it belongs in Git: no status, no creationTimestamp: null.
func manifest(obj runtime.Object) map[string]any {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		panic(fmt.Sprintf("convert %T: %v", obj, err)) // typed API objects always convert
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return m
}

// writeManifests prints objects as one multi-document YAML file with a comment on top.
func writeManifests(w io.Writer, objects []map[string]any, comment string) error {
	var b strings.Builder
	for _, line := range strings.Split(comment, "\n") {
		b.WriteString("# " + line + "\n")
	}
	for i, o := range objects {
		if i > 0 {
			b.WriteString("---\n")
		}
		y, err := yaml.Marshal(o)
		if err != nil {
			return err
		}
		b.Write(y)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *exportResult) printTable(w io.Writer, prog string) {
	t := newTable(w, "WARNINGLIST", "ID", "ENTRIES", "POLICY", "GRADE", "PUBLISH", "ORGS", "WHERE", "ADOPTION WRITES")
	for _, l := range r.Lists {
		where := "inline"
		if len(l.ConfigMaps) > 0 {
			where = plural(len(l.ConfigMaps), "ConfigMap")
		}
		writes := l.AdoptionWrites
		if writes == "" {
			writes = "none"
		}
		t.row(l.Warninglist, l.ID, fmt.Sprint(l.Entries), l.Policy, l.SourceReliability, yesNo(l.Publish), fmt.Sprint(l.Organisations), where, writes)
	}
	t.flush()
	for _, l := range r.Lists {
		for _, n := range l.Notes {
			fmt.Fprintf(w, "note: %s: %s\n", l.Warninglist, n)
		}
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "skipped: %s: %s\n", s.Warninglist, s.Reason)
	}
	if len(r.Lists) > 0 {
		fmt.Fprintf(w, "\n`%s export ... -o yaml` prints the objects, ready to commit.\n", prog)
	}
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
