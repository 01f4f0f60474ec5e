package status

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// maxErrorLen bounds the error text written into a status: a person reads it, and MISP can
// answer with long messages.
const maxErrorLen = 512

// Outcome is what the curation of one event did for the policy that won its creator org.
// An outcome can be tagged and published at once; AlreadyCurated means nothing was needed.
type Outcome struct {
	Policy    types.NamespacedName
	EventUUID string
	Time      time.Time

	Tagged         bool
	Published      bool // confirmed: a publish MISP only queued is not counted
	Republished    bool // sent again after the queued one evidently failed
	AlreadyCurated bool
	// Err is set when the curation failed (the engine retries it; catch-up finds it again).
	Err error
}

// curation accumulates outcomes of one policy on top of the counters the status already
// held when the curator first touched the policy (its baseline), so a restarted or
// failed-over curator continues the counts instead of starting again at zero.
type curation struct {
	uid types.UID // the policy object the counters belong to
	cur v1alpha1.CurationStatus
}

func (c *curation) add(o Outcome) {
	if o.Republished {
		c.cur.Republished++
	}
	switch {
	case o.Err != nil:
		c.cur.Failed++
		c.cur.LastError = truncate(o.Err.Error(), maxErrorLen)
		return
	case o.Tagged || o.Published:
		if o.Tagged {
			c.cur.Tagged++
		}
		if o.Published {
			c.cur.Published++
		}
	case o.AlreadyCurated:
		c.cur.AlreadyCurated++
	default:
		return
	}
	c.cur.LastEventUUID = o.EventUUID
	t := metav1.NewTime(o.Time.UTC().Truncate(time.Second))
	c.cur.LastEventTime = &t
}

// curationEqual compares what would be written (times at second precision, as the apiserver
// stores them).
func curationEqual(a, b *v1alpha1.CurationStatus) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Tagged == b.Tagged && a.Published == b.Published && a.AlreadyCurated == b.AlreadyCurated &&
		a.Failed == b.Failed && a.PublishesUnconfirmed == b.PublishesUnconfirmed && a.Republished == b.Republished && a.LastEventUUID == b.LastEventUUID && a.LastError == b.LastError &&
		timeEqual(a.LastEventTime, b.LastEventTime)
}

func timeEqual(a, b *metav1.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Unix() == b.Unix()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
