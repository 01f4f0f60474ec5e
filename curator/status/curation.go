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
	// DryRun: the MISPInstance is in dry run and this curation would have written (its
	// plan was logged, nothing was sent); WouldTag and WouldPublish say what it would have
	// done. Tagged and Published stay false.
	DryRun       bool
	WouldTag     bool
	WouldPublish bool
	// Err is set when the curation failed for good (catch-up finds the event again).
	Err error
}

// dryRunMemory bounds the events a policy remembers as already counted by a dry run.
const dryRunMemory = 4096

// curation accumulates outcomes of one policy on top of the counters the status already
// held when the curator first touched the policy (its baseline), so a restarted or
// failed-over curator continues the counts instead of starting again at zero.
type curation struct {
	uid types.UID // the policy object the counters belong to
	cur v1alpha1.CurationStatus
	// dryRun holds the events a dry run already counted: a duplicate message or a catch-up
	// pass plans the same event again (a dry run changes nothing), and wouldTag and
	// wouldPublish count events, as tagged and published do.
	dryRun recentSet
	// failures and refusals since the last Events were emitted (failures include refusals).
	failures, refusals       int
	lastFailure, lastRefusal Outcome
}

func (c *curation) add(o Outcome) {
	if o.Republished {
		c.cur.Republished++
	}
	switch {
	case o.Err != nil:
		c.cur.Failed++
		c.cur.LastError = truncate(o.Err.Error(), maxErrorLen)
		c.failures++
		c.lastFailure = o
		if publishRefused(o.Err) {
			c.refusals++
			c.lastRefusal = o
		}
		return
	case o.DryRun:
		if !c.dryRun.add(o.EventUUID, dryRunMemory) {
			return
		}
		if o.WouldTag {
			c.cur.WouldTag++
		}
		if o.WouldPublish {
			c.cur.WouldPublish++
		}
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
		a.Failed == b.Failed && a.WouldTag == b.WouldTag && a.WouldPublish == b.WouldPublish &&
		a.PublishesUnconfirmed == b.PublishesUnconfirmed && a.Republished == b.Republished &&
		a.LastEventUUID == b.LastEventUUID && a.LastError == b.LastError &&
		timeEqual(a.LastEventTime, b.LastEventTime)
}

// recentSet remembers the last n strings added.
type recentSet struct {
	set  map[string]struct{}
	ring []string
	next int
}

// add reports whether s is new, remembering it (and forgetting the oldest beyond n).
func (r *recentSet) add(s string, n int) bool {
	if _, ok := r.set[s]; ok {
		return false
	}
	if r.set == nil {
		r.set = map[string]struct{}{}
	}
	if len(r.ring) < n {
		r.ring = append(r.ring, s)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = s
		r.next = (r.next + 1) % n
	}
	r.set[s] = struct{}{}
	return true
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
