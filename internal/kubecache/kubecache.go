// Package kubecache says what the operator's two processes keep of the Kubernetes API in
// memory: only the watched namespaces (none: all), and of every object its metadata
// without managedFields; Secrets and ConfigMaps are watched as metadata only, and without
// their annotations — kubectl's last-applied-configuration annotation holds the whole
// object, the data of a `kubectl apply`-ed Secret included.
package kubecache

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Options are the cache options of both managers.
func Options(namespaces []string) cache.Options {
	o := cache.Options{DefaultTransform: Strip}
	if len(namespaces) > 0 {
		o.DefaultNamespaces = make(map[string]cache.Config, len(namespaces))
		for _, ns := range namespaces {
			o.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return o
}

// ClientOptions make the manager's client read Secrets and ConfigMaps from the API
// server, never from a cache of whole objects: the reconcilers watch their metadata and
// read the few referenced ones (which must opt in, trust.AllowLabel).
func ClientOptions() client.Options {
	return client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}}}}
}

// Strip is the cache transform: managedFields go from every object (nothing reads them;
// status is written with server-side apply from scratch), annotations from Secret and
// ConfigMap metadata (the only metadata-only watches).
func Strip(obj any) (any, error) {
	o, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil
	}
	o.SetManagedFields(nil)
	switch obj.(type) {
	case *metav1.PartialObjectMetadata, *corev1.Secret, *corev1.ConfigMap:
		o.SetAnnotations(nil)
	}
	return obj, nil
}

// Namespaces reads the --watch-namespaces flag (comma-separated) merged with the older
// --namespace (one namespace): the namespaces to watch, nil for all. Each must be a
// namespace name (an RFC 1123 label).
func Namespaces(watch, single string) ([]string, error) {
	var out []string
	for _, ns := range append(strings.Split(watch, ","), single) {
		ns = strings.TrimSpace(ns)
		if ns == "" || slices.Contains(out, ns) {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
		}
		out = append(out, ns)
	}
	return out, nil
}
