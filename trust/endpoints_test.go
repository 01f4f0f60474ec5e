package trust

import (
	"errors"
	"testing"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

func TestHostAllowList(t *testing.T) {
	l, err := ParseHostAllowList(" misp.misp.svc , *.cert.example ,10.0.0.5,::1")
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"misp.misp.svc": true, "MISP.misp.svc.": true, "a.cert.example": true, "x.y.cert.example": true,
		"cert.example": false, "evil.example": false, "misp.misp.svc.evil.example": false, "10.0.0.5": true, "::1": true, "10.0.0.6": false,
	} {
		if got := l.Allows(host); got != want {
			t.Errorf("Allows(%q) = %t, want %t", host, got, want)
		}
	}
	if empty, _ := ParseHostAllowList(""); !empty.Allows("anything") || !empty.Any() {
		t.Error("an empty list must allow every host")
	}
	for _, bad := range []string{"https://misp", "a b", "*", "*.", "user@host"} {
		if _, err := ParseHostAllowList(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCheckEndpoints(t *testing.T) {
	allowed, _ := ParseHostAllowList("misp.example,*.zmq.example")
	inst := func(url, zmq string, insecure bool) *v1alpha1.MISPInstance {
		i := &v1alpha1.MISPInstance{Spec: v1alpha1.MISPInstanceSpec{URL: url, AllowInsecureHTTP: insecure}}
		if zmq != "" {
			i.Spec.ZeroMQ = &v1alpha1.ZeroMQSpec{Endpoint: zmq}
		}
		return i
	}
	cases := []struct {
		name   string
		inst   *v1alpha1.MISPInstance
		reason string
	}{
		{"https to an allowed host", inst("https://misp.example/misp", "tcp://pub.zmq.example:50000", false), ""},
		{"http without the explicit opt-in", inst("http://misp.example", "", false), ReasonInsecureURL},
		{"http with allowInsecureHTTP", inst("http://misp.example", "", true), ""},
		{"a host off the list", inst("https://attacker.example", "", false), ReasonHostNotAllowed},
		{"a ZeroMQ host off the list", inst("https://misp.example", "tcp://attacker.example:50000", false), ReasonHostNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckEndpoints(c.inst, allowed)
			var ee *EndpointError
			switch {
			case c.reason == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.reason != "" && (!errors.As(err, &ee) || ee.Reason != c.reason):
				t.Errorf("err = %v, want reason %s", err, c.reason)
			}
		})
	}
}
