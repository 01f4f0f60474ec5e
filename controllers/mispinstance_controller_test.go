package controllers

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
)

type wantCond struct {
	status metav1.ConditionStatus
	reason string
}

func TestInstanceConditionsSayWhatTheKeyCanDo(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	host := h.misp.HostOrg()
	partner := h.misp.AddOrg("PARTNER", "")
	T, F, U := metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown

	cases := []struct {
		name    string
		secret  map[string]string // nil: no Secret at all
		publish bool              // the policy on this instance publishes
		want    map[string]wantCond
		// curation is the policy's CurationPermitted (zero: no policy checked).
		curation wantCond
	}{
		{
			name: "site admin of the host org", secret: map[string]string{"apiKey": h.misp.AdminKey()}, publish: true,
			want: map[string]wantCond{
				v1alpha1.ConditionReady: {T, ReasonReady}, v1alpha1.ConditionReachable: {T, ReasonReachable},
				v1alpha1.ConditionAuthenticated: {T, ReasonKeyAccepted}, v1alpha1.ConditionHostOrg: {T, ReasonIsHostOrg},
				v1alpha1.ConditionSiteAdmin: {T, ReasonIsSiteAdmin}, v1alpha1.ConditionWarninglistPermission: {T, ReasonIsSiteAdmin},
			},
			curation: wantCond{T, ReasonPermitted},
		},
		{
			name: "publisher without perm_warninglist", secret: map[string]string{"apiKey": h.misp.AddUser(host, misptest.Role{Publish: true, Tagger: true})},
			want: map[string]wantCond{
				v1alpha1.ConditionReady: {F, ReasonPermissionMissing}, v1alpha1.ConditionWarninglistPermission: {F, ReasonPermissionMissing},
				v1alpha1.ConditionSiteAdmin: {F, ReasonNotSiteAdmin}, v1alpha1.ConditionHostOrg: {U, ReasonCannotVerify},
				v1alpha1.ConditionAuthenticated: {T, ReasonKeyAccepted},
			},
		},
		{
			name: "warninglist editor, not site admin", publish: true,
			secret: map[string]string{"apiKey": h.misp.AddUser(host, misptest.Role{Tagger: true, Warninglist: true})},
			want: map[string]wantCond{
				v1alpha1.ConditionReady: {T, ReasonLimitedCapabilities}, v1alpha1.ConditionWarninglistPermission: {T, ReasonPermWarninglist},
				v1alpha1.ConditionSiteAdmin: {F, ReasonNotSiteAdmin}, v1alpha1.ConditionHostOrg: {U, ReasonCannotVerify},
			},
			curation: wantCond{F, ReasonNotSiteAdmin},
		},
		{
			name: "site admin of another org", secret: map[string]string{"apiKey": h.misp.AddUser(partner, misptest.Role{SiteAdmin: true})},
			want: map[string]wantCond{
				v1alpha1.ConditionReady: {T, ReasonLimitedCapabilities}, v1alpha1.ConditionHostOrg: {F, ReasonNotHostOrg},
				v1alpha1.ConditionSiteAdmin: {T, ReasonIsSiteAdmin},
			},
			curation: wantCond{F, ReasonNotHostOrg},
		},
		{
			name: "unknown key", secret: map[string]string{"apiKey": strings.Repeat("x", 40)},
			want: map[string]wantCond{
				v1alpha1.ConditionReady: {F, ReasonKeyRejected}, v1alpha1.ConditionAuthenticated: {F, ReasonKeyRejected},
				v1alpha1.ConditionReachable: {T, ReasonReachable}, v1alpha1.ConditionSiteAdmin: {U, ReasonNotChecked},
			},
		},
		{
			name: "Secret without the key", secret: map[string]string{"other": "x"},
			want: map[string]wantCond{v1alpha1.ConditionReady: {F, ReasonKeyMissing}, v1alpha1.ConditionAuthenticated: {F, ReasonKeyMissing}},
		},
		{
			name: "no Secret",
			want: map[string]wantCond{v1alpha1.ConditionReady: {F, ReasonSecretNotFound}, v1alpha1.ConditionAuthenticated: {F, ReasonSecretNotFound}},
		},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := h.with(t)
			inst := fmt.Sprintf("inst-%d", i)
			if c.secret != nil {
				h.secret(inst+"-key", c.secret)
			}
			h.instance(inst, inst+"-key")
			got := h.waitInstance(inst, func(i *v1alpha1.MISPInstance) error {
				for typ, w := range c.want {
					if err := wantCondition(i.Status.Conditions, typ, w.status, w.reason, i.Generation); err != nil {
						return err
					}
				}
				return nil
			})
			wantReady := 0.0
			if c.want[v1alpha1.ConditionReady].status == metav1.ConditionTrue {
				wantReady = 1
			}
			if v, ok := h.metric("misptrust_mispinstance_ready", map[string]string{"instance": h.ns + "/" + inst}); !ok || v != wantReady {
				t.Errorf("misptrust_mispinstance_ready = %v (exported: %v), want %v", v, ok, wantReady)
			}
			for _, typ := range instanceConditionTypes {
				if cd := condition(got.Status.Conditions, typ); cd.Message == "" || !strings.HasSuffix(cd.Message, ".") {
					t.Errorf("%s message %q is not a sentence", typ, cd.Message)
				}
			}
			for _, cd := range got.Status.Conditions {
				if strings.Contains(cd.Message, c.secret["apiKey"]) && c.secret["apiKey"] != "" {
					t.Errorf("%s message contains the API key", cd.Type)
				}
			}
			if c.want[v1alpha1.ConditionAuthenticated].status == metav1.ConditionTrue || c.want[v1alpha1.ConditionReady].status == metav1.ConditionTrue {
				if got.Status.MISPVersion != "2.5.1" || got.Status.Identity == nil || got.Status.Identity.Email == "" {
					t.Errorf("status version %q identity %+v, want 2.5.1 and the key's user", got.Status.MISPVersion, got.Status.Identity)
				}
			}
			if c.curation.status == "" {
				return
			}
			p := policy("p-"+inst, inst, "a", org(1, "one"))
			p.Spec.Publish = c.publish
			h.createPolicy(p)
			pol := h.waitPolicy(p.Name, func(p *v1alpha1.OrgTrustPolicy) error {
				if err := synced(p); err != nil {
					return err
				}
				return wantCondition(p.Status.Conditions, v1alpha1.ConditionCurationPermitted, c.curation.status, c.curation.reason, p.Generation)
			})
			ready := condition(pol.Status.Conditions, v1alpha1.ConditionReady)
			if ready.Status != metav1.ConditionTrue {
				t.Errorf("policy Ready = %s: a curation limit must not stop the warninglist", ready.Status)
			}
			if c.curation.status == metav1.ConditionFalse && !strings.Contains(ready.Message, "Curation is limited") {
				t.Errorf("policy Ready message %q does not mention the limit", ready.Message)
			}
		})
	}
}

func TestRotatedKeyIsCheckedAtOnce(t *testing.T) {
	t.Parallel()
	// The resync interval is an hour: only the Secret watch can trigger the re-check.
	h := newHarness(t, harnessOptions{})
	h.secret("key", map[string]string{"apiKey": strings.Repeat("0", 40)})
	h.instance("misp", "key")
	h.waitInstance("misp", func(i *v1alpha1.MISPInstance) error {
		return wantCondition(i.Status.Conditions, v1alpha1.ConditionAuthenticated, metav1.ConditionFalse, ReasonKeyRejected, i.Generation)
	})
	h.createPolicy(policy("p", "misp", "a", org(1, "one")))
	h.waitPolicy("p", func(p *v1alpha1.OrgTrustPolicy) error {
		return wantCondition(p.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonInstanceNotReady, p.Generation)
	})

	eventually(t, func() error {
		var s corev1.Secret
		if err := k8sClient.Get(h.ctx, h.key("key"), &s); err != nil {
			return err
		}
		s.Data = map[string][]byte{"apiKey": []byte(h.misp.AdminKey())}
		return k8sClient.Update(h.ctx, &s)
	})
	h.waitInstance("misp", func(i *v1alpha1.MISPInstance) error {
		return wantCondition(i.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, ReasonReady, i.Generation)
	})
	// The policy follows the instance.
	h.waitPolicy("p", synced)
}
