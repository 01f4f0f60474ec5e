package trust

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	circl = "5cf66e53-b5f8-43e7-be9a-49880a3b4631"
	other = "7f1b3c2e-9d4a-4e8b-a6c5-0b2d4f6e8a19"
	third = "1521ae8b-48de-4766-8b2a-fdecef763fa8"
)

func org(uuid string) Org { return Org{UUID: uuid} }

func TestBeatsFollowsPriorityThenGradeThenName(t *testing.T) {
	cases := []struct {
		name string
		a, b Candidate
		want bool
	}{
		{"higher priority wins over a better grade", Candidate{Key: "ns/z", Priority: 10, SourceReliability: "c"}, Candidate{Key: "ns/a", Priority: 5, SourceReliability: "a"}, true},
		{"lower priority loses", Candidate{Key: "ns/a", Priority: 1, SourceReliability: "a"}, Candidate{Key: "ns/b", Priority: 2, SourceReliability: "g"}, false},
		{"same priority: grade a beats grade c", Candidate{Key: "ns/z", SourceReliability: "a"}, Candidate{Key: "ns/a", SourceReliability: "c"}, true},
		{"same priority and grade: alphabetical key wins", Candidate{Key: "ns/alpha", SourceReliability: "b"}, Candidate{Key: "ns/beta", SourceReliability: "b"}, true},
		{"same priority and grade: later key loses", Candidate{Key: "ns/beta", SourceReliability: "b"}, Candidate{Key: "ns/alpha", SourceReliability: "b"}, false},
		{"negative priorities compare as numbers", Candidate{Key: "ns/a", Priority: -1, SourceReliability: "a"}, Candidate{Key: "ns/b", Priority: 0, SourceReliability: "a"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Beats(tc.a, tc.b); got != tc.want {
				t.Fatalf("Beats = %v, want %v", got, tc.want)
			}
			if tc.want && Beats(tc.b, tc.a) {
				t.Fatal("rule is not antisymmetric")
			}
		})
	}
}

func TestResolveReportsLossesOnTheLosingPolicy(t *testing.T) {
	high := Candidate{Key: "sec/high", Priority: 100, SourceReliability: "a", Orgs: []Org{org(circl), org(other)}}
	medium := Candidate{Key: "sec/medium", Priority: 50, SourceReliability: "c", Orgs: []Org{org(other), org(third)}}
	for _, order := range [][]Candidate{{high, medium}, {medium, high}} {
		res := Resolve(order)
		wantWinner := map[string]string{circl: "sec/high", other: "sec/high", third: "sec/medium"}
		if !reflect.DeepEqual(res.Winner, wantWinner) {
			t.Errorf("winners = %v, want %v", res.Winner, wantWinner)
		}
		wantLosses := map[string][]Loss{"sec/medium": {{OrgUUID: other, Winner: "sec/high"}}}
		if !reflect.DeepEqual(res.Losses, wantLosses) {
			t.Errorf("losses = %v, want %v", res.Losses, wantLosses)
		}
	}
}

func TestResolveWithoutOverlapHasNoLosses(t *testing.T) {
	res := Resolve([]Candidate{{Key: "a/x", SourceReliability: "a", Orgs: []Org{org(circl)}}, {Key: "a/y", SourceReliability: "a", Orgs: []Org{org(other)}}})
	if len(res.Losses) != 0 || len(res.Winner) != 2 {
		t.Fatalf("got %+v", res)
	}
}

func TestParseOrgListReportsBadLinesWithNumbers(t *testing.T) {
	data := "# partners of the high level\n" +
		circl + " # CIRCL\n" +
		"\n" +
		"  " + "5CF66E53-B5F8-43E7-BE9A-49880A3B4632" + "  \r\n" +
		"not-a-uuid # broken\n" +
		other + "#no space\n"
	orgs, problems := ParseOrgList("configmap/p/high", data)
	want := []Org{{UUID: circl, Name: "CIRCL"}, {UUID: "5cf66e53-b5f8-43e7-be9a-49880a3b4632"}, {UUID: other, Name: "no space"}}
	if !reflect.DeepEqual(orgs, want) {
		t.Errorf("orgs = %+v, want %+v", orgs, want)
	}
	if len(problems) != 1 || problems[0].Line != 5 || problems[0].String() != `configmap/p/high line 5: "not-a-uuid" is not an organisation UUID` {
		t.Errorf("problems = %v", problems)
	}
}

func TestEffectiveOrgsMergesInlineAndConfigMaps(t *testing.T) {
	p := &v1alpha1.OrgTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "high"},
		Spec: v1alpha1.OrgTrustPolicySpec{
			Organisations: []v1alpha1.Organisation{{UUID: "5CF66E53-B5F8-43E7-BE9A-49880A3B4631", Name: "CIRCL"}},
			OrganisationsFrom: []v1alpha1.ConfigMapKeyReference{
				{Name: "partners", Key: "high"},
				{Name: "missing", Key: "x"},
			},
		},
	}
	lookup := func(ref v1alpha1.ConfigMapKeyReference) (string, bool, error) {
		if ref.Name == "partners" {
			return circl + " # CIRCL from map\n" + other + " # Other\nbad\n", true, nil
		}
		return "", false, nil
	}
	orgs, problems, err := EffectiveOrgs(p, lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := []Org{{UUID: circl, Name: "CIRCL"}, {UUID: other, Name: "Other"}}
	if !reflect.DeepEqual(orgs, want) {
		t.Errorf("orgs = %+v, want %+v", orgs, want)
	}
	var got []string
	for _, pr := range problems {
		got = append(got, pr.String())
	}
	wantProblems := []string{`configmap/partners/high line 3: "bad" is not an organisation UUID`, "configmap/missing/x: ConfigMap or key not found"}
	if !reflect.DeepEqual(got, wantProblems) {
		t.Errorf("problems = %q, want %q", got, wantProblems)
	}

	boom := errors.New("apiserver down")
	if _, _, err := EffectiveOrgs(p, func(v1alpha1.ConfigMapKeyReference) (string, bool, error) { return "", false, boom }); !errors.Is(err, boom) {
		t.Errorf("lookup error not returned: %v", err)
	}
}

func TestTagsAndDefaults(t *testing.T) {
	prefix := ""
	prio := int32(7)
	cases := []struct {
		name     string
		spec     v1alpha1.OrgTrustPolicySpec
		tags     []string
		list     string
		prefix   string
		priority int32
		deletion v1alpha1.DeletionPolicy
	}{
		{"high: grade a and publish", v1alpha1.OrgTrustPolicySpec{SourceReliability: "a", Publish: true},
			[]string{`admiralty-scale:source-reliability="a"`, `workflow:state="complete"`}, "misp-trust-operator/sec/p", "org_uuid:", 0, v1alpha1.DeletionPolicyRetain},
		{"medium: grade c, tag only, credibility and extra tags; extra tags cannot set the grade or the workflow", v1alpha1.OrgTrustPolicySpec{SourceReliability: "c", InformationCredibility: "2",
			ExtraTags:       []string{"tlp:green", `admiralty-scale:source-reliability="a"`, `workflow:state="complete"`, "two\nlines"},
			WarninglistName: "org-confidence-level-medium", ValuePrefix: &prefix, Priority: &prio, DeletionPolicy: v1alpha1.DeletionPolicyDelete},
			[]string{`admiralty-scale:source-reliability="c"`, `admiralty-scale:information-credibility="2"`, "tlp:green"}, "org-confidence-level-medium", "", 7, v1alpha1.DeletionPolicyDelete},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "p"}, Spec: tc.spec}
			if got := Tags(p); !reflect.DeepEqual(got, tc.tags) {
				t.Errorf("Tags = %q, want %q", got, tc.tags)
			}
			if got := WarninglistName(p); got != tc.list {
				t.Errorf("WarninglistName = %q, want %q", got, tc.list)
			}
			if got := ValuePrefix(p); got != tc.prefix {
				t.Errorf("ValuePrefix = %q, want %q", got, tc.prefix)
			}
			if got := Priority(p); got != tc.priority {
				t.Errorf("Priority = %d, want %d", got, tc.priority)
			}
			if got := DeletionPolicy(p); got != tc.deletion {
				t.Errorf("DeletionPolicy = %q, want %q", got, tc.deletion)
			}
		})
	}
}

func TestParseOrgListBoundsProblemsWhateverTheInput(t *testing.T) {
	// 1 MiB of junk lines: the review measured 524k problem records (91 MB live).
	junk := strings.Repeat("x\n", 1<<19)
	orgs, problems := ParseOrgList("configmap/junk/k", junk)
	if len(orgs) != 0 || len(problems) != MaxProblemsPerSource+1 {
		t.Fatalf("%d orgs, %d problems; want 0 and %d", len(orgs), len(problems), MaxProblemsPerSource+1)
	}
	last := problems[len(problems)-1]
	if last.Kind != ProblemMoreLines || CountProblems(problems) != 1<<19 || last.Line != 0 {
		t.Errorf("last problem %+v, count %d; want a summary counting all %d lines", last, CountProblems(problems), 1<<19)
	}
	if problems[0].Line != 1 || problems[9].Line != 10 {
		t.Errorf("the first problems are not the first lines: %v", problems[:2])
	}
	t.Run("a name longer than the CRD's limit makes its line invalid", func(t *testing.T) {
		orgs, problems := ParseOrgList("s", circl+" # "+strings.Repeat("n", MaxNameLength+1)+"\n"+other+" # ok\n")
		if len(orgs) != 1 || len(problems) != 1 || problems[0].Line != 1 {
			t.Errorf("orgs %v problems %v", orgs, problems)
		}
	})
	t.Run("names may contain '#': only the first one separates", func(t *testing.T) {
		orgs, problems := ParseOrgList("s", circl+" # CERT #1\n")
		if len(problems) != 0 || len(orgs) != 1 || orgs[0].Name != "CERT #1" {
			t.Errorf("orgs %v problems %v", orgs, problems)
		}
	})
}

func TestEffectiveOrgsReadsARepeatedSourceOnce(t *testing.T) {
	// The same ConfigMap key listed 8 times gave 523 MB live in the review.
	ref := v1alpha1.ConfigMapKeyReference{Name: "partners", Key: "high"}
	p := &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "high"},
		Spec: v1alpha1.OrgTrustPolicySpec{OrganisationsFrom: []v1alpha1.ConfigMapKeyReference{ref, ref, ref, ref, ref, ref, ref, ref}}}
	reads := 0
	orgs, problems, err := EffectiveOrgs(p, func(v1alpha1.ConfigMapKeyReference) (string, bool, error) {
		reads++
		return circl + "\nbad\n", true, nil
	})
	if err != nil || reads != 1 || len(orgs) != 1 || len(problems) != 1 {
		t.Errorf("reads %d, orgs %v, problems %v, err %v; want one read, one org, one problem", reads, orgs, problems, err)
	}
}

func TestPartitionSharesAWholeListAndCapsLosses(t *testing.T) {
	mk := func(n, from int) []Org {
		var out []Org
		for i := from; i < from+n; i++ {
			out = append(out, Org{UUID: fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)})
		}
		return out
	}
	a := Candidate{Key: "ns/a", Priority: 1, SourceReliability: "a", Orgs: mk(100, 0)}
	b := Candidate{Key: "ns/b", SourceReliability: "b", Orgs: mk(100, 50)}
	p := Partition([]Candidate{b, a}, 3)
	if len(p.Won["ns/a"]) != 100 || &p.Won["ns/a"][0] != &a.Orgs[0] {
		t.Error("the policy that wins all it lists does not share its list")
	}
	if len(p.Won["ns/b"]) != 50 || p.LossCount["ns/b"] != 50 || len(p.Losses["ns/b"]) != 3 || p.Losses["ns/b"][0].Winner != "ns/a" {
		t.Errorf("b: won %d, lost %d, listed %v", len(p.Won["ns/b"]), p.LossCount["ns/b"], p.Losses["ns/b"])
	}
	full := Resolve([]Candidate{b, a})
	if len(full.Winner) != 150 || len(full.Losses["ns/b"]) != 50 {
		t.Errorf("Resolve: %d winners, %d losses", len(full.Winner), len(full.Losses["ns/b"]))
	}
}

func TestWhyNamesTheStepOfBeatsThatDecides(t *testing.T) {
	cases := []struct {
		name string
		a, b Candidate
		want string
	}{
		{"priority decides, whatever the grades", Candidate{Key: "ns/z", Priority: 10, SourceReliability: "c"}, Candidate{Key: "ns/a", Priority: 5, SourceReliability: "a"}, "priority 10 > 5"},
		{"grade decides at equal priority", Candidate{Key: "ns/z", Priority: 3, SourceReliability: "c"}, Candidate{Key: "ns/a", Priority: 3, SourceReliability: "a"}, "same priority 3, grade a before c"},
		{"name decides at equal priority and grade", Candidate{Key: "ns/beta", SourceReliability: "b"}, Candidate{Key: "ns/alpha", SourceReliability: "b"}, "same priority 0 and grade b, name ns/alpha before ns/beta"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Why(tc.a, tc.b); got != tc.want {
				t.Errorf("Why(a, b) = %q, want %q", got, tc.want)
			}
			// The explanation does not depend on the order of the arguments.
			if got := Why(tc.b, tc.a); got != tc.want {
				t.Errorf("Why(b, a) = %q, want %q", got, tc.want)
			}
		})
	}
}
