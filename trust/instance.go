package trust

import (
	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp"
)

// Default keys of the Secrets a MISPInstance references (API doc comments).
const (
	DefaultAPIKeySecretKey = "apiKey"
	DefaultCASecretKey     = "ca.crt"
	ZeroMQUsernameKey      = "username"
	ZeroMQPasswordKey      = "password"
)

// SecretRefs returns the instance's API key and CA bundle references with
// their default keys filled in; ca is nil without spec.tls.caSecretRef.
func SecretRefs(inst *v1alpha1.MISPInstance) (apiKey v1alpha1.SecretKeyReference, ca *v1alpha1.SecretKeyReference) {
	apiKey = inst.Spec.APIKeySecretRef
	if apiKey.Key == "" {
		apiKey.Key = DefaultAPIKeySecretKey
	}
	if t := inst.Spec.TLS; t != nil && t.CASecretRef != nil {
		r := *t.CASecretRef
		if r.Key == "" {
			r.Key = DefaultCASecretKey
		}
		ca = &r
	}
	return apiKey, ca
}

// ClientOptions applies what the instance's spec says about reaching MISP
// (URL, certificate verification, rate ceiling, timeout) to the process-wide
// template, and names the client after the instance ("namespace/name": its
// metrics' instance label, its concurrency-limit gauge). The API key and CA
// bundle come from Secrets; the caller sets them.
func ClientOptions(template misp.Options, inst *v1alpha1.MISPInstance) misp.Options {
	o := template
	o.URL = inst.Spec.URL
	o.Instance = inst.Namespace + "/" + inst.Name
	if t := inst.Spec.TLS; t != nil {
		o.InsecureSkipVerify = t.InsecureSkipVerify
	}
	if a := inst.Spec.API; a != nil {
		if a.RequestsPerSecond > 0 {
			o.QPS = float64(a.RequestsPerSecond)
		}
		if a.Timeout != nil && a.Timeout.Duration > 0 {
			o.Timeout = a.Timeout.Duration
		}
	}
	return o
}
