package status

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConditionPublishesConfirmed is the curator's condition on a MISPInstance about the
// publishes MISP queued for it ("Job queued"): are they taking effect?
const ConditionPublishesConfirmed = "PublishesConfirmed"

// Reasons of PublishesConfirmed.
const (
	ReasonConfirmed = "Confirmed" // no publish waits longer than the stuck threshold
	// ReasonUnconfirmed: publishes queued longer ago than the threshold are still not
	// confirmed — MISP's background workers are down, or losing jobs.
	ReasonUnconfirmed = "PublishesUnconfirmed"
)

// Publishing is the state of one instance's publishes MISP queued and the curator has not
// confirmed (engine.Unconfirmed).
type Publishing struct {
	Unconfirmed int
	// Stuck are unconfirmed for longer than StuckAfter; Oldest is when MISP answered the
	// oldest one.
	Stuck      int
	Oldest     time.Time
	StuckAfter time.Duration
}

// publishingCondition decides PublishesConfirmed. Its message changes only when the
// situation does: the count of stuck publishes and the oldest one, never an age.
func publishingCondition(p Publishing) (metav1.ConditionStatus, string, string) {
	if p.Stuck == 0 {
		return metav1.ConditionTrue, ReasonConfirmed, fmt.Sprintf(
			"no publish MISP queued has waited longer than %s to take effect", p.StuckAfter)
	}
	return metav1.ConditionFalse, ReasonUnconfirmed, fmt.Sprintf(
		"%d publish(es) MISP answered with \"Job queued\" have not taken effect after %s (the oldest since %s): "+
			"MISP's background workers (the prio queue) may be down or losing jobs. The curator keeps checking them "+
			"and publishes again only when a later publish was confirmed and these were not",
		p.Stuck, p.StuckAfter, p.Oldest.UTC().Truncate(time.Second).Format(time.RFC3339))
}
