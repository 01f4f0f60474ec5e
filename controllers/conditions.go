package controllers

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxListed caps the items a condition message lists (problems, conflicts):
// status must stay small and readable even for a 100,000-organisation policy.
const maxListed = 10

// cond builds a condition; observedGeneration is filled in by mergeConditions.
func cond(typ string, status metav1.ConditionStatus, reason, message string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: message}
}

// mergeConditions returns the conditions of the given types as they should be
// applied: the wanted status, reason and message with generation as
// observedGeneration, keeping lastTransitionTime from existing when the
// status did not change (meta.SetStatusCondition semantics). changed reports
// whether any of them differs from existing, so a no-op resync writes nothing.
func mergeConditions(existing []metav1.Condition, wanted []metav1.Condition, generation int64, now metav1.Time) (out []metav1.Condition, changed bool) {
	work := make([]metav1.Condition, 0, len(existing))
	for _, c := range existing {
		work = append(work, *c.DeepCopy())
	}
	for _, w := range wanted {
		w.ObservedGeneration = generation
		w.LastTransitionTime = now
		old := meta.FindStatusCondition(existing, w.Type)
		if old == nil || old.Status != w.Status || old.Reason != w.Reason || old.Message != w.Message || old.ObservedGeneration != w.ObservedGeneration {
			changed = true
		}
		meta.SetStatusCondition(&work, w)
	}
	for _, w := range wanted {
		out = append(out, *meta.FindStatusCondition(work, w.Type))
	}
	return out, changed
}

// listCapped renders items as "a; b; c (and 12 more)".
func listCapped(items []string, max int) string {
	if len(items) <= max {
		return strings.Join(items, "; ")
	}
	return fmt.Sprintf("%s (and %d more)", strings.Join(items[:max], "; "), len(items)-max)
}

// plural returns "1 organisation" / "3 organisations".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// maxMISPString bounds a string MISP gave (a list name, an error text) when it
// is quoted in a condition or Event: MISP is another party, and status must
// stay small whatever it answers.
const maxMISPString = 200

// maxMISPError bounds an error rendered in a condition: the operator's context
// plus what MISP answered.
const maxMISPError = 600

// truncateMISP cuts s to maxMISPString bytes (on a rune boundary) with "…".
func truncateMISP(s string) string {
	if len(s) <= maxMISPString {
		return s
	}
	cut := maxMISPString
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
