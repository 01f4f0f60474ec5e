package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// applyStatus writes the controller's part of an object's status with
// server-side apply under FieldManager. status (a pointer to a struct) must hold exactly the fields
// the controller owns: a field it owned before and leaves out is removed, and
// fields of other managers (the curator's feed, catchUp, curation and
// FeedConnected condition) are left alone — conditions is a list-map keyed by
// type, so each manager owns its own entries.
//
// An unstructured body is used rather than the typed object because the typed
// one would also send its zero-valued spec and the other manager's fields.
func applyStatus(ctx context.Context, c client.Client, kind string, obj client.Object, status any) error {
	fields, err := runtime.DefaultUnstructuredConverter.ToUnstructured(status)
	if err != nil {
		return fmt.Errorf("encode status of %s %s/%s: %w", kind, obj.GetNamespace(), obj.GetName(), err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"status": fields}}
	u.SetAPIVersion(v1alpha1.GroupVersion.String())
	u.SetKind(kind)
	u.SetNamespace(obj.GetNamespace())
	u.SetName(obj.GetName())
	// Only apply to the object that was read: never recreate a deleted one.
	u.SetUID(obj.GetUID())
	if err := c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply status of %s %s/%s: %w", kind, obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}
