package engine

import (
	"reflect"
	"testing"

	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/misp"
)

const (
	gradeA     = `admiralty-scale:source-reliability="a"`
	gradeC     = `admiralty-scale:source-reliability="c"`
	cred2      = `admiralty-scale:information-credibility="2"`
	complete   = `workflow:state="complete"`
	incomplete = `workflow:state="incomplete"`
)

var (
	high   = index.Policy{Key: "sec/high", Tags: []string{gradeA, complete}, Publish: true}
	medium = index.Policy{Key: "sec/medium", Tags: []string{gradeC}}
)

func tags(spec ...string) []misp.Tag {
	var out []misp.Tag
	for i := 0; i+1 < len(spec); i += 2 {
		out = append(out, misp.Tag{Name: spec[i], Local: spec[i+1] == "local"})
	}
	return out
}

func TestMakePlan(t *testing.T) {
	cases := []struct {
		name   string
		pol    index.Policy
		st     eventState
		recent bool
		want   Plan
	}{
		{"high, pulled published with the partner's global incomplete: attach, remove, publish after the unpublishing removal",
			high, eventState{Published: true, Tags: tags("tlp:green", "global", incomplete, "global")}, false,
			Plan{Attach: []string{gradeA, complete}, Remove: []string{incomplete}, PublishIfUnpublished: true}},
		{"high, unpublished with global incomplete: publish for sure",
			high, eventState{Tags: tags(incomplete, "global")}, false,
			Plan{Attach: []string{gradeA, complete}, Remove: []string{incomplete}, Publish: true}},
		{"high, published without incomplete: tags only",
			high, eventState{Published: true}, false,
			Plan{Attach: []string{gradeA, complete}}},
		{"high, local incomplete on a published event: its removal does not unpublish",
			high, eventState{Published: true, Tags: tags(incomplete, "local")}, false,
			Plan{Attach: []string{gradeA, complete}, Remove: []string{incomplete}}},
		{"high, already curated and published: nothing",
			high, eventState{Published: true, Tags: tags(gradeA, "local", complete, "local", "tlp:green", "global")}, false,
			Plan{}},
		{"high, tags there but unpublished: publish only",
			high, eventState{Tags: tags(gradeA, "local", complete, "local")}, false,
			Plan{Publish: true}},
		{"high, unpublished but published by us moments ago (job pending): nothing",
			high, eventState{Tags: tags(gradeA, "local", complete, "local")}, true,
			Plan{}},
		{"high, published by us moments ago but the partner's incomplete is back: remove and publish again",
			high, eventState{Tags: tags(gradeA, "local", complete, "local", incomplete, "global")}, true,
			Plan{Remove: []string{incomplete}, PublishIfUnpublished: true}},
		{"high, the partner's own global copy of a policy tag counts as attached",
			high, eventState{Published: true, Tags: tags(gradeA, "global")}, false,
			Plan{Attach: []string{complete}}},
		{"tag names match case-insensitively, as MISP's LIKE does",
			high, eventState{Published: true, Tags: tags(`Admiralty-Scale:source-reliability="A"`, "local", `WORKFLOW:state="complete"`, "local")}, false,
			Plan{}},
		{"medium on an unpublished event with incomplete: tag only, never publish or remove",
			medium, eventState{Tags: tags(incomplete, "global")}, false,
			Plan{Attach: []string{gradeC}}},
		{"medium, already tagged: nothing",
			medium, eventState{Tags: tags(gradeC, "local")}, false,
			Plan{}},
		{"promoted medium → high: the old local grade goes, the new one comes",
			high, eventState{Published: true, Tags: tags(gradeC, "local", incomplete, "global")}, false,
			Plan{Attach: []string{gradeA, complete}, Remove: []string{gradeC, incomplete}, PublishIfUnpublished: true}},
		{"a partner's global grade is left alone (removing it would unpublish)",
			medium, eventState{Published: true, Tags: tags(gradeA, "global")}, false,
			Plan{Attach: []string{gradeC}}},
		{"a stale local credibility goes too",
			medium, eventState{Tags: tags(gradeC, "local", cred2, "local")}, false,
			Plan{Remove: []string{cred2}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := makePlan(tc.pol, tc.st, tc.recent)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan = %+v\nwant   %+v", got, tc.want)
			}
			if got.Empty() != reflect.DeepEqual(tc.want, Plan{}) {
				t.Fatalf("Empty = %v", got.Empty())
			}
		})
	}
}

func TestStateAfterPlan(t *testing.T) {
	st := eventState{Published: true, Tags: tags("tlp:green", "global", incomplete, "global")}
	got := st.after([]string{gradeA, complete}, []string{incomplete}, true, true)
	want := eventState{Published: true, Tags: tags("tlp:green", "global", gradeA, "local", complete, "local")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after = %+v, want %+v", got, want)
	}
	if got := st.after(nil, []string{incomplete}, true, false); got.Published {
		t.Fatal("a global removal without a publish must leave the event unpublished")
	}
}

func BenchmarkPlan(b *testing.B) {
	st := eventState{Published: true, Tags: tags("tlp:green", "global", incomplete, "global", `misp-galaxy:threat-actor="X"`, "global")}
	b.ReportAllocs()
	for b.Loop() {
		if p := makePlan(high, st, false); len(p.Attach) != 2 {
			b.Fatal(p)
		}
	}
}

func TestPlanForMetadata(t *testing.T) {
	curated := misp.EventMeta{Published: true, Tags: tags(gradeA, "local", complete, "local", "tlp:green", "global")}
	if p := PlanFor(high, curated); !p.Empty() {
		t.Fatalf("curated event: %+v", p)
	}
	pulled := misp.EventMeta{Published: true, Tags: tags("tlp:green", "global", incomplete, "global")}
	want := Plan{Attach: []string{gradeA, complete}, Remove: []string{incomplete}, PublishIfUnpublished: true}
	if p := PlanFor(high, pulled); !reflect.DeepEqual(p, want) {
		t.Fatalf("pulled event: %+v", p)
	}
}
