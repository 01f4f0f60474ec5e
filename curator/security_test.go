package curator

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/misptrust/misp-trust-operator/curator/status"
	"github.com/misptrust/misp-trust-operator/misp/misptest"
	"github.com/misptrust/misp-trust-operator/trust"
)

func TestTheCuratorSendsNoCredentialsWithoutOptInOrOffTheAllowList(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	ctx := context.Background()
	// The Secret loses its opt-in label: no pipeline, the condition names the label.
	var s corev1.Secret
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: e.ns, Name: "misp-api"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Labels = nil
	if err := k8sClient.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	e.instance("misp", nil)
	e.start(e.config())
	eventually(t, "FeedConnected=False naming the label", func() (bool, string) {
		c := e.feedCondition()
		return c != nil && c.Reason == status.ReasonInvalidConfiguration && strings.Contains(c.Message, `misptrust.io/allow: "true"`), fmt.Sprint(c)
	})
	if n := e.misp.ZMQStats().Subscribers; n != 0 || len(e.misp.Requests()) != 0 {
		t.Errorf("%d subscribers, %d REST calls without an opted-in Secret", n, len(e.misp.Requests()))
	}
}

func TestTheCuratorContactsNoHostOffTheAllowList(t *testing.T) {
	e := newEnv(t, misptest.Options{})
	e.instance("misp", nil) // the double listens on 127.0.0.1
	c := e.config()
	var err error
	if c.AllowedHosts, err = trust.ParseHostAllowList("misp.misp.svc"); err != nil {
		t.Fatal(err)
	}
	e.start(c)
	eventually(t, "FeedConnected=False naming the host", func() (bool, string) {
		c := e.feedCondition()
		return c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, `"127.0.0.1"`) &&
			strings.Contains(c.Message, "allow-list"), fmt.Sprint(c)
	})
	if n := e.misp.ZMQStats().Subscribers; n != 0 || len(e.misp.Requests()) != 0 {
		t.Errorf("%d subscribers, %d REST calls to a host off the allow-list", n, len(e.misp.Requests()))
	}
}
