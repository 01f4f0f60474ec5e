package curator

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/status"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

// curatorEvents lists the curator's Events about one object of the test's namespace.
func (e *env) curatorEvents(kind, name, reason string) []eventsv1.Event {
	e.t.Helper()
	var list eventsv1.EventList
	if err := k8sClient.List(context.Background(), &list, client.InNamespace(e.ns)); err != nil {
		e.t.Fatalf("list Events: %v", err)
	}
	var out []eventsv1.Event
	for _, ev := range list.Items {
		if ev.ReportingController == status.EventRecorderName && ev.Regarding.Kind == kind &&
			ev.Regarding.Name == name && ev.Reason == reason {
			out = append(out, ev)
		}
	}
	return out
}

func describe(evs []eventsv1.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		n := int32(1)
		if ev.Series != nil {
			n = ev.Series.Count
		}
		fmt.Fprintf(&b, "[%s %s x%d: %s] ", ev.Type, ev.Reason, n, ev.Note)
	}
	return b.String()
}

// TestEventsTellTheFeedAndRefusedPublishes runs the curator with the key of a host-org
// publisher that is not a site admin: it may attach local tags, but MISP refuses to remove
// a partner's global tag and to publish a partner's event. The policy gets a
// PublishRefused Event, aggregated by the events API into one Event with a count; the
// MISPInstance gets FeedConnected, then FeedLost when MISP goes away.
func TestEventsTellTheFeedAndRefusedPublishes(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	key := e.misp.AddUser(e.misp.HostOrg(), misptest.Role{Tagger: true, Publish: true})
	e.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "misp-publisher", Labels: allowLabels},
		StringData: map[string]string{"apiKey": key}})
	e.instance("misp", func(s *v1alpha1.MISPInstanceSpec) { s.APIKeySecretRef.Name = "misp-publisher" })
	e.policy("high", "a", true, highOrg)
	e.start(e.config())
	e.waitSubscribed(1)

	eventually(t, "a FeedConnected Event on the MISPInstance", func() (bool, string) {
		evs := e.curatorEvents("MISPInstance", "misp", status.EventFeedConnected)
		return len(evs) == 1 && evs[0].Type == corev1.EventTypeNormal && strings.Contains(evs[0].Note, e.misp.ZMQEndpoint()), describe(evs)
	})

	first := e.misp.SimulatePull(pulledEvent(highOrg, true, trust.TagWorkflowIncomplete))
	eventually(t, "a PublishRefused Event on the policy", func() (bool, string) {
		evs := e.curatorEvents("OrgTrustPolicy", "high", status.EventPublishRefused)
		return len(evs) == 1 && evs[0].Type == corev1.EventTypeWarning && strings.Contains(evs[0].Note, first.UUID) &&
			strings.Contains(evs[0].Note, "site-admin"), describe(evs)
	})
	second := e.misp.SimulatePull(pulledEvent(highOrg, true, trust.TagWorkflowIncomplete))
	eventually(t, "the second refusal counted in the same Event", func() (bool, string) {
		evs := e.curatorEvents("OrgTrustPolicy", "high", status.EventPublishRefused)
		return len(evs) == 1 && evs[0].Series != nil && evs[0].Series.Count == 2, describe(evs)
	})
	eventually(t, "both refusals counted as failures in the status", func() (bool, string) {
		c := e.curation("high")
		return c != nil && c.Failed == 2 && strings.Contains(c.LastError, second.UUID), fmt.Sprintf("%+v", c)
	})
	if evs := e.curatorEvents("OrgTrustPolicy", "high", status.EventCurationFailed); len(evs) != 0 {
		t.Errorf("refused publishes also reported as %s", describe(evs))
	}

	e.misp.Close()
	eventually(t, "a FeedLost Event on the MISPInstance", func() (bool, string) {
		evs := e.curatorEvents("MISPInstance", "misp", status.EventFeedLost)
		return len(evs) == 1 && evs[0].Type == corev1.EventTypeWarning && strings.Contains(evs[0].Note, "Catch-up recovers"), describe(evs)
	})
}
