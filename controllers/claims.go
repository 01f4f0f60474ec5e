package controllers

import (
	"sort"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// claims records which policies were refused a warninglist another policy
// owns, so the owner reports the clash too (design.md §Security model: a
// clash is reported on both sides). It is rebuilt from the claimants' own
// reconciles after a restart.
type claims struct {
	mu sync.Mutex
	// byOwner: owner policy key → claimant policy key → what the claimant wants.
	byOwner map[string]map[string]string
	// events wakes the owner's reconcile when its claimants change.
	events chan event.GenericEvent
}

func newClaims() *claims {
	return &claims{byOwner: map[string]map[string]string{}, events: make(chan event.GenericEvent, 1024)}
}

// claim records that claimant was refused a list of owner; note says which.
func (c *claims) claim(owner, claimant, note string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.byOwner[owner]
	if m == nil {
		m = map[string]string{}
		c.byOwner[owner] = m
	}
	if m[claimant] == note {
		return
	}
	m[claimant] = note
	c.notify(owner)
}

// release forgets every claim of claimant (its list is its own again, or it
// is deleted).
func (c *claims) release(claimant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for owner, m := range c.byOwner {
		if _, ok := m[claimant]; ok {
			delete(m, claimant)
			if len(m) == 0 {
				delete(c.byOwner, owner)
			}
			c.notify(owner)
		}
	}
}

// of returns the claims on owner's list, sorted, as "claimant (note)".
func (c *claims) of(owner string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for claimant, note := range c.byOwner[owner] {
		out = append(out, claimant+" ("+note+")")
	}
	sort.Strings(out)
	return out
}

// notify enqueues the owner without ever blocking a reconcile: a full channel
// only delays the report to the owner's next resync.
func (c *claims) notify(owner string) {
	ns, name, ok := strings.Cut(owner, "/")
	if !ok {
		return
	}
	var o client.Object = &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	select {
	case c.events <- event.GenericEvent{Object: o}:
	default:
	}
}
