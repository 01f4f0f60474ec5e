package trust

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp"
)

func TestInstanceDefaults(t *testing.T) {
	template := misp.Options{Timeout: 30 * time.Second, UserAgent: "ua"}
	cases := []struct {
		name    string
		spec    v1alpha1.MISPInstanceSpec
		wantKey v1alpha1.SecretKeyReference
		wantCA  *v1alpha1.SecretKeyReference
		wantOpt misp.Options
	}{
		{"only the required fields: default key, no CA, no rate ceiling (the adaptive limit alone)",
			v1alpha1.MISPInstanceSpec{URL: "https://misp", APIKeySecretRef: v1alpha1.SecretKeyReference{Name: "k"}},
			v1alpha1.SecretKeyReference{Name: "k", Key: "apiKey"}, nil,
			misp.Options{URL: "https://misp", Timeout: 30 * time.Second, UserAgent: "ua", Instance: "sec/misp-prod"}},
		{"every field: explicit keys, CA with default key, skip-verify, rate and timeout",
			v1alpha1.MISPInstanceSpec{URL: "https://m2", APIKeySecretRef: v1alpha1.SecretKeyReference{Name: "k", Key: "key"},
				TLS: &v1alpha1.TLSSpec{CASecretRef: &v1alpha1.SecretKeyReference{Name: "ca"}, InsecureSkipVerify: true},
				API: &v1alpha1.APISpec{RequestsPerSecond: 3, Timeout: &metav1.Duration{Duration: time.Second}}},
			v1alpha1.SecretKeyReference{Name: "k", Key: "key"}, &v1alpha1.SecretKeyReference{Name: "ca", Key: "ca.crt"},
			misp.Options{URL: "https://m2", InsecureSkipVerify: true, QPS: 3, Timeout: time.Second, UserAgent: "ua", Instance: "sec/misp-prod"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inst := &v1alpha1.MISPInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "misp-prod"}, Spec: tc.spec}
			key, ca := SecretRefs(inst)
			if key != tc.wantKey || (ca == nil) != (tc.wantCA == nil) || (ca != nil && *ca != *tc.wantCA) {
				t.Errorf("SecretRefs = %+v, %+v; want %+v, %+v", key, ca, tc.wantKey, tc.wantCA)
			}
			got := ClientOptions(template, inst)
			if got.URL != tc.wantOpt.URL || got.InsecureSkipVerify != tc.wantOpt.InsecureSkipVerify || got.QPS != tc.wantOpt.QPS ||
				got.Timeout != tc.wantOpt.Timeout || got.UserAgent != tc.wantOpt.UserAgent || got.APIKey != "" ||
				got.Instance != tc.wantOpt.Instance {
				t.Errorf("ClientOptions = %+v, want %+v", got, tc.wantOpt)
			}
		})
	}
}
