package curator

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/curator/status"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

func TestInstanceWithoutZeroMQIsCuratedByCatchUp(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	e.instance("misp", func(s *v1alpha1.MISPInstanceSpec) {
		s.ZeroMQ = nil
		s.Curation.CatchUp = &v1alpha1.CatchUpSpec{Interval: &metav1.Duration{Duration: time.Second}}
	})
	e.policy("high", "a", true, highOrg)
	e.start(e.config())
	eventually(t, "FeedConnected=False NotConfigured", func() (bool, string) {
		c := e.feedCondition()
		f := e.mispInstance().Status.Feed
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == status.ReasonNotConfigured &&
			f != nil && f.State == status.FeedStateNotConfigured, fmt.Sprint(c)
	})
	ev := e.misp.SimulatePull(pulledEvent(highOrg, true, trust.TagWorkflowIncomplete))
	eventually(t, "the event curated by a periodic catch-up pass", func() (bool, string) {
		return e.curated(ev.UUID, true, tagA, trust.TagWorkflowComplete)
	})
}

func TestPipelineFollowsItsInstanceAndSecrets(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	e.instance("misp", nil)
	e.policy("high", "a", true, highOrg)
	e.start(e.config())
	e.waitSubscribed(1)
	ctx := context.Background()
	secretKey := types.NamespacedName{Namespace: e.ns, Name: "misp-api"}

	// A rotated API key takes effect at once: the pipeline restarts with it.
	newKey := e.misp.AddUser(e.misp.HostOrg(), misptest.Role{SiteAdmin: true})
	var s corev1.Secret
	if err := k8sClient.Get(ctx, secretKey, &s); err != nil {
		t.Fatal(err)
	}
	s.Data = map[string][]byte{"apiKey": []byte(newKey)}
	if err := k8sClient.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an event curated with the rotated key", func() (bool, string) {
		ev := e.misp.SimulatePull(pulledEvent(highOrg, true))
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if ok, _ := e.curated(ev.UUID, true, tagA); ok {
				for _, r := range e.requestsAbout(ev.UUID) {
					if r.UserID == "1" {
						return false, "curated with the old key"
					}
				}
				return true, ""
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false, "not curated"
	})

	// The Secret disappears: the pipeline stops and the condition says why.
	if err := k8sClient.Delete(ctx, &s); err != nil {
		t.Fatal(err)
	}
	eventually(t, "FeedConnected=False InvalidConfiguration", func() (bool, string) {
		c := e.feedCondition()
		return c != nil && c.Reason == status.ReasonInvalidConfiguration && strings.Contains(c.Message, `"misp-api"`), fmt.Sprint(c)
	})
	eventually(t, "the subscription closed", func() (bool, string) {
		n := e.misp.ZMQStats().Subscribers
		return n == 0, fmt.Sprint(n, " subscribers")
	})
	if c := e.feedCondition(); strings.Contains(c.Message, newKey) {
		t.Error("the condition shows the API key")
	}

	// It comes back: curation resumes.
	e.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "misp-api", Labels: allowLabels},
		StringData: map[string]string{"apiKey": e.misp.AdminKey()}})
	eventually(t, "FeedConnected=True again", func() (bool, string) {
		c := e.feedCondition()
		return c != nil && c.Status == metav1.ConditionTrue, fmt.Sprint(c)
	})
	e.waitSubscribed(1)

	// The instance is deleted: its pipeline stops.
	if err := k8sClient.Delete(ctx, &v1alpha1.MISPInstance{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "misp"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the subscription of the deleted instance closed", func() (bool, string) {
		n := e.misp.ZMQStats().Subscribers
		return n == 0, fmt.Sprint(n, " subscribers")
	})
	if e.logs.contains(newKey) || e.logs.contains(e.misp.AdminKey()) {
		t.Error("an API key appears in the curator's logs")
	}
}
