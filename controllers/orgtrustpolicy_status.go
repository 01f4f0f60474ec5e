package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/trust"
)

// Reasons of OrgTrustPolicy conditions (Synced reasons are in warninglist_sync.go).
const (
	ReasonAllValid                  = "AllValid"
	ReasonInvalidOrganisations      = "InvalidOrganisations"
	ReasonNoConflicts               = "NoConflicts"
	ReasonNoOverlaps                = "NoOverlaps"
	ReasonCreatorAlsoSharer         = "CreatorAlsoSharer"
	ReasonOrganisationsWonElsewhere = "OrganisationsWonElsewhere"
	ReasonPermitted                 = "Permitted"
	ReasonSyncPending               = "SyncPending"
	ReasonNoNameConflict            = "NoNameConflict"
	ReasonClaimedElsewhere          = "ClaimedElsewhere"
)

// policyStatus is the part of OrgTrustPolicyStatus the controller owns.
type policyStatus struct {
	ObservedGeneration int64                       `json:"observedGeneration,omitempty"`
	Conditions         []metav1.Condition          `json:"conditions,omitempty"`
	Warninglist        *v1alpha1.WarninglistStatus `json:"warninglist,omitempty"`
	Organisations      int32                       `json:"organisations,omitempty"`
	SharingOrgs        int32                       `json:"sharingOrganisations,omitempty"`
	Tags               []string                    `json:"tags,omitempty"`
}

// policyStatusBuilder collects the outcome of one reconcile into the status.
type policyStatusBuilder struct {
	p    *v1alpha1.OrgTrustPolicy
	st   policyStatus
	orgs metav1.Condition // OrganisationsValid
	conf metav1.Condition // Conflicts
	over metav1.Condition // SourceOverlaps
	sync metav1.Condition // Synced
	cur  metav1.Condition // CurationPermitted
	name metav1.Condition // NameConflict
	// gate is set while the instance keeps the controller from calling MISP.
	gate *refusal
}

func newPolicyStatus(p *v1alpha1.OrgTrustPolicy) *policyStatusBuilder {
	b := &policyStatusBuilder{p: p}
	b.st.ObservedGeneration = p.Generation
	b.st.Organisations = p.Status.Organisations
	b.st.SharingOrgs = p.Status.SharingOrganisations
	b.st.Tags = trust.Tags(p)
	if p.Status.Warninglist != nil {
		wl := *p.Status.Warninglist
		b.st.Warninglist = &wl
	}
	pending := "Not yet computed."
	b.orgs = cond(v1alpha1.ConditionOrganisationsValid, metav1.ConditionUnknown, ReasonSyncPending, pending)
	b.conf = cond(v1alpha1.ConditionConflicts, metav1.ConditionUnknown, ReasonSyncPending, pending)
	b.over = cond(v1alpha1.ConditionSourceOverlaps, metav1.ConditionUnknown, ReasonSyncPending, pending)
	b.sync = cond(v1alpha1.ConditionSynced, metav1.ConditionUnknown, ReasonSyncPending, pending)
	b.cur = cond(v1alpha1.ConditionCurationPermitted, metav1.ConditionUnknown, ReasonSyncPending, pending)
	b.name = cond(v1alpha1.ConditionNameConflict, metav1.ConditionFalse, ReasonNoNameConflict, "No other object claims this policy's warninglist.")
	return b
}

// setResolution reports the organisation sources and the precedence rule.
func (b *policyStatusBuilder) setResolution(res resolution) {
	b.st.Organisations = int32(res.Orgs)
	b.st.SharingOrgs = int32(len(res.Sharers))
	if len(res.Overlaps) == 0 {
		b.over = cond(v1alpha1.ConditionSourceOverlaps, metav1.ConditionFalse, ReasonNoOverlaps, "No organisation is both a creator and a sharer in the policies of the instance that include this one.")
	} else {
		items := make([]string, len(res.Overlaps))
		for i, o := range res.Overlaps {
			items[i] = o.String()
		}
		b.over = cond(v1alpha1.ConditionSourceOverlaps, metav1.ConditionTrue, ReasonCreatorAlsoSharer,
			fmt.Sprintf("%s: a creator rule and a sharer rule both match an event the organisation shares itself; the precedence rule (priority, then grade, then name) decides: %s.",
				plural(len(res.Overlaps), "overlap"), listCapped(items, maxListed)))
	}
	if len(res.Problems) == 0 {
		b.orgs = cond(v1alpha1.ConditionOrganisationsValid, metav1.ConditionTrue, ReasonAllValid,
			fmt.Sprintf("Every organisation source parsed: %s.", plural(res.Orgs, "organisation")))
	} else {
		// Summaries of the invalid lines not kept (trust.MaxProblemsPerSource) are
		// counted in "(and N more)", not listed.
		var items []string
		for _, pr := range res.Problems {
			if pr.Kind != trust.ProblemMoreLines && len(items) < maxListed {
				items = append(items, pr.String())
			}
		}
		total := trust.CountProblems(res.Problems)
		listed := strings.Join(items, "; ")
		if more := total - len(items); more > 0 {
			listed = fmt.Sprintf("%s (and %d more)", listed, more)
		}
		reason := ReasonInvalidOrganisations
		if res.Unusable != nil && res.Unusable.Kind == trust.ProblemNotAllowed {
			reason = ReasonOrganisationsSourceNotAllowed
		}
		b.orgs = cond(v1alpha1.ConditionOrganisationsValid, metav1.ConditionFalse, reason,
			fmt.Sprintf("%s in the organisation sources (valid lines are used): %s.", plural(total, "problem"), listed))
	}
	if res.LossCount == 0 {
		b.conf = cond(v1alpha1.ConditionConflicts, metav1.ConditionFalse, ReasonNoConflicts, "No organisation of this policy is won by another policy.")
	} else {
		items := make([]string, len(res.Losses))
		for i, l := range res.Losses {
			items[i] = fmt.Sprintf("%s (won by %s)", l.OrgUUID, l.Winner)
		}
		listed := strings.Join(items, "; ")
		if more := res.LossCount - len(items); more > 0 {
			listed = fmt.Sprintf("%s (and %d more)", listed, more)
		}
		b.conf = cond(v1alpha1.ConditionConflicts, metav1.ConditionTrue, ReasonOrganisationsWonElsewhere,
			fmt.Sprintf("%s listed here %s won by other policies of the instance (higher priority, then more reliable grade, then name) and left out of this warninglist: %s.",
				plural(res.LossCount, "organisation"), isAre(res.LossCount), listed))
	}
}

// setGate records that MISP is not called (instance missing or not Ready).
func (b *policyStatusBuilder) setGate(g *refusal) {
	b.gate = g
	b.sync = cond(v1alpha1.ConditionSynced, metav1.ConditionUnknown, g.Reason, g.Message)
	b.cur = cond(v1alpha1.ConditionCurationPermitted, metav1.ConditionUnknown, g.Reason, g.Message)
}

// setCuration reports whether the instance's key can do what the curator
// needs for this policy.
func (b *policyStatusBuilder) setCuration(inst *v1alpha1.MISPInstance) {
	hostOrg := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionHostOrg)
	siteAdmin := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionSiteAdmin)
	var reasons, msgs []string
	unknown := false
	switch {
	case hostOrg == nil || hostOrg.Status == metav1.ConditionUnknown:
		unknown = true
	case hostOrg.Status == metav1.ConditionFalse:
		reasons = append(reasons, hostOrg.Reason)
		msgs = append(msgs, "local tags: "+hostOrg.Message)
	}
	if b.p.Spec.Publish && siteAdmin != nil && siteAdmin.Status == metav1.ConditionFalse {
		reasons = append(reasons, siteAdmin.Reason)
		msgs = append(msgs, "publish: "+siteAdmin.Message)
	}
	switch {
	case len(reasons) > 0:
		b.cur = cond(v1alpha1.ConditionCurationPermitted, metav1.ConditionFalse, reasons[0],
			fmt.Sprintf("The key of MISPInstance %q cannot do what this policy needs; %s", inst.Name, listCapped(msgs, maxListed)))
	case unknown:
		reason, msg := ReasonCannotVerify, "the instance has not reported it"
		if hostOrg != nil {
			reason, msg = hostOrg.Reason, hostOrg.Message
		}
		b.cur = cond(v1alpha1.ConditionCurationPermitted, metav1.ConditionUnknown, reason,
			fmt.Sprintf("Whether the key of MISPInstance %q may attach local tags is not known: %s", inst.Name, msg))
	case b.p.Spec.Publish:
		b.cur = cond(v1alpha1.ConditionCurationPermitted, metav1.ConditionTrue, ReasonPermitted,
			fmt.Sprintf("The key of MISPInstance %q can attach local tags and publish partners' events.", inst.Name))
	default:
		b.cur = cond(v1alpha1.ConditionCurationPermitted, metav1.ConditionTrue, ReasonPermitted,
			fmt.Sprintf("The key of MISPInstance %q can attach local tags.", inst.Name))
	}
}

// setNameConflict reports that this policy was refused a list another
// object owns (reason WarninglistNameTaken or WarninglistOwnedElsewhere).
func (b *policyStatusBuilder) setNameConflict(reason, message string) {
	b.name = cond(v1alpha1.ConditionNameConflict, metav1.ConditionTrue, reason, message)
}

// setClaims reports, on the owner's side, the policies refused its list.
func (b *policyStatusBuilder) setClaims(claimants []string) {
	if len(claimants) == 0 || b.name.Status == metav1.ConditionTrue {
		return
	}
	b.name = cond(v1alpha1.ConditionNameConflict, metav1.ConditionTrue, ReasonClaimedElsewhere, fmt.Sprintf(
		"This policy keeps its warninglist; %s also %s it and %s refused: %s.", plural(len(claimants), "other policy"),
		map[bool]string{true: "names", false: "name"}[len(claimants) == 1], isAre(len(claimants)), listCapped(claimants, maxListed)))
}

// setSynced records the warninglist outcome.
func (b *policyStatusBuilder) setSynced(status metav1.ConditionStatus, reason, message string) {
	b.sync = cond(v1alpha1.ConditionSynced, status, reason, message)
}

// setWarninglist records the list written to MISP.
func (b *policyStatusBuilder) setWarninglist(id string, version int, want desiredList) {
	b.st.Warninglist = &v1alpha1.WarninglistStatus{ID: id, Name: want.Name, Entries: int32(want.Orgs), EntriesHash: want.EntriesHash, Version: int64(version)}
}

// ready summarises: the list matches the policy and every source parsed.
func (b *policyStatusBuilder) ready() metav1.Condition {
	switch {
	case b.gate != nil:
		return cond(v1alpha1.ConditionReady, metav1.ConditionFalse, b.gate.Reason, b.gate.Message)
	case b.sync.Status != metav1.ConditionTrue:
		return cond(v1alpha1.ConditionReady, metav1.ConditionFalse, b.sync.Reason, b.sync.Message)
	case b.orgs.Status == metav1.ConditionFalse:
		return cond(v1alpha1.ConditionReady, metav1.ConditionFalse, b.orgs.Reason, "The warninglist holds the valid organisations, but "+lowerFirst(b.orgs.Message))
	}
	msg := b.sync.Message
	if b.cur.Status == metav1.ConditionFalse {
		msg += " Curation is limited (see CurationPermitted): " + b.cur.Reason + "."
	}
	return cond(v1alpha1.ConditionReady, metav1.ConditionTrue, ReasonSynced, msg)
}

// apply writes the status when it differs from the object's; it reports
// whether it wrote.
func (b *policyStatusBuilder) apply(ctx context.Context, c client.Client, now metav1.Time) (bool, error) {
	wanted := []metav1.Condition{b.ready(), b.sync, b.orgs, b.conf, b.over, b.cur, b.name}
	conds, changed := mergeConditions(b.p.Status.Conditions, wanted, b.p.Generation, now)
	b.st.Conditions = conds
	old := b.p.Status
	if !changed && old.ObservedGeneration == b.st.ObservedGeneration && old.Organisations == b.st.Organisations && old.SharingOrganisations == b.st.SharingOrgs &&
		slices.Equal(old.Tags, b.st.Tags) && warninglistEqual(old.Warninglist, b.st.Warninglist) {
		return false, nil
	}
	return true, applyStatus(ctx, c, "OrgTrustPolicy", b.p, &b.st)
}

func warninglistEqual(a, b *v1alpha1.WarninglistStatus) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// statusRecord is what the status says about the list (used after a
// restart); description is what the list's description is when the record is
// current (the status does not hold it).
func statusRecord(p *v1alpha1.OrgTrustPolicy, description string) listRecord {
	wl := p.Status.Warninglist
	if wl == nil {
		return listRecord{}
	}
	synced := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionSynced)
	return listRecord{
		ID: wl.ID, Name: wl.Name, EntriesHash: wl.EntriesHash, Description: description, Version: int(wl.Version),
		InSync: synced != nil && synced.Status == metav1.ConditionTrue,
	}
}

func lowerFirst(s string) string {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return s
	}
	return string(s[0]+'a'-'A') + s[1:]
}
