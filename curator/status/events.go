package status

import (
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp"
)

// EventRecorderName is the reporting controller of the curator's Events.
const EventRecorderName = "misp-trust-curator"

// Reasons of the curator's Events. On a MISPInstance: the ZeroMQ feed connected, was lost,
// or cannot connect. On an OrgTrustPolicy: curations that failed for good, and publishes
// MISP refused (the key lacks a permission).
const (
	EventFeedConnected     = "FeedConnected"
	EventFeedLost          = "FeedLost"
	EventFeedConnectFailed = "FeedConnectFailed"
	EventCurationFailed    = "CurationFailed"
	EventPublishRefused    = "PublishRefused"
)

// Events are emitted at flush time, at most one per object and reason per flush, and only
// for what changed since the previous flush. The recorder (client-go's events.k8s.io
// broadcaster, controller-runtime's GetEventRecorder) folds repeats of the same object,
// reason and action into one Event whose series count grows, and writes that count at most
// every 30 minutes: a flapping feed or a policy failing every event costs the apiserver a
// bounded number of writes.

// feedEvent says which Event, if any, a change of FeedConnected from the reason this
// process last wrote (prev, "" before its first write) to next deserves. Only this
// process's own writes count as "was connected": a restarted curator reads Connected from
// the status, but it did not lose anything.
func feedEvent(prev string, next *metav1.Condition) (eventType, reason string, ok bool) {
	if next == nil || next.Reason == prev {
		return "", "", false
	}
	switch {
	case next.Reason == ReasonConnected:
		return corev1.EventTypeNormal, EventFeedConnected, true
	case prev == ReasonConnected:
		return corev1.EventTypeWarning, EventFeedLost, true
	case next.Reason == ReasonUnreachable, next.Reason == ReasonHandshakeFailing,
		next.Reason == ReasonSilent, next.Reason == ReasonInvalidConfiguration:
		return corev1.EventTypeWarning, EventFeedConnectFailed, true
	}
	return "", "", false
}

func (w *Writer) emitFeedEvent(key types.NamespacedName, uid types.UID, prev string, cond *metav1.Condition) {
	if w.opts.Recorder == nil {
		return
	}
	typ, reason, ok := feedEvent(prev, cond)
	if !ok {
		return
	}
	note := "ZeroMQ feed " + cond.Message
	switch reason {
	case EventFeedConnected:
		note = "ZeroMQ feed " + cond.Message + "."
	case EventFeedLost:
		note = fmt.Sprintf("ZeroMQ feed lost (%s): %s. Catch-up recovers the events published meanwhile.", cond.Reason, cond.Message)
	case EventFeedConnectFailed:
		note = fmt.Sprintf("ZeroMQ feed cannot connect (%s): %s.", cond.Reason, cond.Message)
	}
	obj := &v1alpha1.MISPInstance{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, UID: uid}}
	w.opts.Recorder.Eventf(obj, nil, typ, reason, "Subscribe", "%s", truncate(note, maxErrorLen))
}

// emitPolicyEvents reports the failures recorded since the last call.
func (w *Writer) emitPolicyEvents(key types.NamespacedName, uid types.UID, e *policyEntry) {
	w.mu.Lock()
	failures, refusals := e.acc.failures, e.acc.refusals
	lastFailure, lastRefusal := e.acc.lastFailure, e.acc.lastRefusal
	e.acc.failures, e.acc.refusals = 0, 0
	e.acc.lastFailure, e.acc.lastRefusal = Outcome{}, Outcome{}
	w.mu.Unlock()
	if w.opts.Recorder == nil || failures == 0 {
		return
	}
	obj := &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, UID: uid}}
	if refusals > 0 {
		w.opts.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventPublishRefused, "Publish", "%s", truncate(fmt.Sprintf(
			"MISP refused to publish %s of this policy (last: event %s: %v). Publishing partners' events needs a site-admin key "+
				"of the host organisation: see the MISPInstance's SiteAdmin condition and this policy's CurationPermitted.",
			plural(refusals, "event"), lastRefusal.EventUUID, lastRefusal.Err), noteLen))
	}
	if other := failures - refusals; other > 0 {
		last := lastFailure
		if publishRefused(last.Err) {
			// The last failure was a refusal, already reported: any other one says as much.
			last = Outcome{}
		}
		msg := fmt.Sprintf("%s failed for good", plural(other, "curation"))
		if last.EventUUID != "" {
			msg += fmt.Sprintf(" (last: event %s: %v)", last.EventUUID, last.Err)
		}
		w.opts.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventCurationFailed, "Curate", "%s", truncate(
			msg+". Catch-up tries them again; status.curation.lastError holds the latest error.", noteLen))
	}
}

// noteLen keeps an Event note under the events API's 1 kB limit.
const noteLen = 1000

// publishRefused reports whether a curation failed because MISP refused the publishing
// steps to the key: publishing a partner's event needs a site admin (405 otherwise), and
// so does removing the partner's global workflow:state="incomplete" tag (403), which
// comes first (misp-api.md, misp/real/sync/README.md).
func publishRefused(err error) bool {
	var ae *misp.APIError
	if !errors.As(err, &ae) || !(errors.Is(ae.Kind, misp.ErrNotAllowed) || errors.Is(ae.Kind, misp.ErrForbidden)) {
		return false
	}
	return ae.Endpoint == "/events/publish/{id}" || ae.Endpoint == "/tags/removeTagFromObject"
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
