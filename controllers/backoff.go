package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// instanceBackoff is the per-MISPInstance backoff both reconcilers share: once
// a MISP failed to answer (network, timeout, 5xx, 429), neither the instance's
// checks nor its policies' syncs call it again before the backoff ends. A dead
// or black-holed MISP then costs its own objects a worker for one deadline per
// backoff period, and the other instances nothing.
type instanceBackoff struct {
	base, max time.Duration
	clock     clock.PassiveClock

	mu sync.Mutex
	m  map[types.NamespacedName]backoffState
}

type backoffState struct {
	url      string // a new URL starts afresh
	failures int
	until    time.Time
	last     string // the last failure, for conditions (never a secret)
}

func newInstanceBackoff(base, max time.Duration, c clock.PassiveClock) *instanceBackoff {
	return &instanceBackoff{base: base, max: max, clock: c, m: map[types.NamespacedName]backoffState{}}
}

// failed records a failure to reach the instance's MISP at url and returns how
// long to wait: base·2^(n-1), at most max, plus up to 20 %.
func (b *instanceBackoff) failed(key types.NamespacedName, url string, err error) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.m[key]
	if st.url != url {
		st = backoffState{url: url}
	}
	st.failures++
	d := b.max
	if shift := st.failures - 1; shift < 30 {
		if x := b.base << shift; x > 0 && x < b.max {
			d = x
		}
	}
	d = jittered(d)
	st.until = b.clock.Now().Add(d)
	st.last = trimDot(err)
	b.m[key] = st
	return d
}

// ok forgets the failures of the instance.
func (b *instanceBackoff) ok(key types.NamespacedName) {
	b.mu.Lock()
	delete(b.m, key)
	b.mu.Unlock()
}

// wait returns how long the instance's MISP at url is still not to be called,
// and the last failure.
func (b *instanceBackoff) wait(key types.NamespacedName, url string) (time.Duration, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.m[key]
	if !ok || st.url != url {
		return 0, ""
	}
	if d := st.until.Sub(b.clock.Now()); d > 0 {
		return d, st.last
	}
	return 0, ""
}
