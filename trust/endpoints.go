package trust

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// HostAllowList is the set of MISP hosts the operator may talk to: where it sends a
// MISPInstance's API key (REST) and ZeroMQ credentials. Anyone who may create a
// MISPInstance could otherwise make the operator send a Secret of their namespace to a
// host of their choosing. The zero value allows every host.
type HostAllowList struct {
	patterns []string // lower case; "*.example.org" allows every subdomain
}

// ParseHostAllowList reads --misp-allowed-hosts: comma-separated host names or IP
// addresses, "*.example.org" allowing every subdomain of example.org (not example.org
// itself). Empty allows every host.
func ParseHostAllowList(s string) (HostAllowList, error) {
	var l HostAllowList
	for _, p := range strings.Split(s, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		host := strings.TrimPrefix(p, "*.")
		if host == "" || strings.ContainsAny(host, "*/:@ ") && net.ParseIP(host) == nil {
			return HostAllowList{}, fmt.Errorf("%q is not a host name, an IP address or *.domain", p)
		}
		l.patterns = append(l.patterns, p)
	}
	return l, nil
}

// Any reports whether every host is allowed.
func (l HostAllowList) Any() bool { return len(l.patterns) == 0 }

// String lists the patterns, comma-separated.
func (l HostAllowList) String() string { return strings.Join(l.patterns, ",") }

// Allows reports whether host (no port; IPv6 without brackets) may be contacted.
func (l HostAllowList) Allows(host string) bool {
	if l.Any() {
		return true
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, p := range l.patterns {
		if domain, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(host, "."+domain) {
				return true
			}
			continue
		}
		if host == p {
			return true
		}
	}
	return false
}

// Reasons of an EndpointError (MISPInstance conditions).
const (
	ReasonHostNotAllowed = "HostNotAllowed"
	ReasonInsecureURL    = "InsecureURL"
)

// EndpointError says why an instance's MISP must not be contacted. Its message names the
// host or the field to change, never a secret.
type EndpointError struct {
	Reason  string
	Message string
}

func (e *EndpointError) Error() string { return e.Message }

// CheckEndpoints refuses an instance whose REST URL or ZeroMQ endpoint is not on the
// allow-list, or whose URL is plain http without spec.allowInsecureHTTP (the API key
// would travel unencrypted). It is checked before any Secret is read.
func CheckEndpoints(inst *v1alpha1.MISPInstance, allowed HostAllowList) error {
	u, err := url.Parse(inst.Spec.URL)
	if err != nil || u.Host == "" {
		return &EndpointError{Reason: ReasonHostNotAllowed, Message: fmt.Sprintf("spec.url %q is not a URL with a host", inst.Spec.URL)}
	}
	if u.Scheme != "https" && !inst.Spec.AllowInsecureHTTP {
		return &EndpointError{Reason: ReasonInsecureURL, Message: fmt.Sprintf(
			"spec.url uses %s: the API key would travel unencrypted; use https, or set spec.allowInsecureHTTP: true", u.Scheme)}
	}
	if !allowed.Allows(u.Hostname()) {
		return &EndpointError{Reason: ReasonHostNotAllowed, Message: fmt.Sprintf(
			"MISP host %q (spec.url) is not on the operator's allow-list (--misp-allowed-hosts %s); no key is sent to it", u.Hostname(), allowed)}
	}
	if z := inst.Spec.ZeroMQ; z != nil {
		host, _, err := net.SplitHostPort(strings.TrimPrefix(z.Endpoint, "tcp://"))
		if err != nil {
			return &EndpointError{Reason: ReasonHostNotAllowed, Message: fmt.Sprintf("spec.zeroMQ.endpoint %q has no host:port", z.Endpoint)}
		}
		if !allowed.Allows(host) {
			return &EndpointError{Reason: ReasonHostNotAllowed, Message: fmt.Sprintf(
				"ZeroMQ host %q (spec.zeroMQ.endpoint) is not on the operator's allow-list (--misp-allowed-hosts %s); no credentials are sent to it", host, allowed)}
		}
	}
	return nil
}
