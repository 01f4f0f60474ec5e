// Package v1alpha1 contains the API of misp-trust-operator: MISPInstance (how to
// reach one MISP server) and OrgTrustPolicy (a trust level for a set of
// organisations, curated into a MISP custom warninglist and into event tags).
//
// +kubebuilder:object:generate=true
// +groupName=misptrust.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "misptrust.io", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
