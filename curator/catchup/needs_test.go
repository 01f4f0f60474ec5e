package catchup

import (
	"testing"

	"github.com/misptrust/misp-trust-operator/controllers/trust"
	"github.com/misptrust/misp-trust-operator/misp"
)

func TestNeedsCuration(t *testing.T) {
	local := func(name string) misp.Tag { return misp.Tag{Name: name, Local: true} }
	global := func(name string) misp.Tag { return misp.Tag{Name: name} }
	cases := []struct {
		name   string
		policy string // "high" or "medium"
		meta   misp.EventMeta
		want   bool
	}{
		{"medium without its tag", "medium", misp.EventMeta{}, true},
		{"medium with its tag", "medium", misp.EventMeta{Tags: []misp.Tag{local(tagC)}}, false},
		{"medium whose tag the partner set globally: attaching it changes nothing", "medium",
			misp.EventMeta{Tags: []misp.Tag{global(tagC)}}, false},
		{"medium with a stale local grade of an earlier policy", "medium",
			misp.EventMeta{Tags: []misp.Tag{local(tagC), local(tagA)}}, true},
		{"a partner's global admiralty tag is not ours to remove", "medium",
			misp.EventMeta{Tags: []misp.Tag{local(tagC), global(tagA)}}, false},
		{"medium does not care about publishing", "medium",
			misp.EventMeta{Published: false, Tags: []misp.Tag{local(tagC), global(trust.TagWorkflowIncomplete)}}, false},
		{"high tagged but unpublished", "high",
			misp.EventMeta{Tags: []misp.Tag{local(tagA), local(trust.TagWorkflowComplete)}}, true},
		{"high published without complete", "high", misp.EventMeta{Published: true, Tags: []misp.Tag{local(tagA)}}, true},
		{"high done", "high",
			misp.EventMeta{Published: true, Tags: []misp.Tag{local(tagA), local(trust.TagWorkflowComplete)}}, false},
		{"high done but the partner's edit brought incomplete back", "high",
			misp.EventMeta{Published: true, Tags: []misp.Tag{local(tagA), local(trust.TagWorkflowComplete),
				global(trust.TagWorkflowIncomplete)}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := policyMedium
			if tc.policy == "high" {
				p = policyHigh
			}
			if got := needsCuration(tc.meta, p); got != tc.want {
				t.Fatalf("needsCuration = %v, want %v", got, tc.want)
			}
		})
	}
}
