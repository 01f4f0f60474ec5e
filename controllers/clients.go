package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// credentialError says why a client could not be built from the instance's
// Secrets; Reason is the condition reason (SecretNotFound, KeyMissing,
// CABundleNotFound, CABundleInvalid, InvalidConfiguration). It never holds
// a secret value.
type credentialError struct {
	Reason  string
	Message string
}

func (e *credentialError) Error() string { return e.Message }

// Condition reasons for credential problems.
const (
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonSecretNotAllowed: the Secret does not carry trust.AllowLabel.
	ReasonSecretNotAllowed     = "SecretNotAllowed"
	ReasonKeyMissing           = "KeyMissing"
	ReasonCABundleNotFound     = "CABundleNotFound"
	ReasonCABundleInvalid      = "CABundleInvalid"
	ReasonInvalidConfiguration = "InvalidConfiguration"
)

// mispClients builds and caches one misp.Client per MISPInstance, shared by
// both reconcilers so the client-side rate limit covers all calls to one MISP.
//
// A client is rebuilt when the instance's connection spec or the
// resourceVersion of a referenced Secret changes (a rotated key takes effect
// at once). Secrets are watched as metadata only — the controller never keeps
// every Secret of the cluster in memory — and their data is read from the API
// server only when a client has to be (re)built.
type mispClients struct {
	meta     client.Reader // cached metadata of Secrets
	live     client.Reader // API server
	template misp.Options
	allowed  trust.HostAllowList

	mu      sync.Mutex
	entries map[types.NamespacedName]clientEntry
}

type clientEntry struct {
	key    string
	client *misp.Client
}

func newMISPClients(meta, live client.Reader, template misp.Options, allowed trust.HostAllowList) *mispClients {
	return &mispClients{meta: meta, live: live, template: template, allowed: allowed, entries: map[types.NamespacedName]clientEntry{}}
}

// Get returns the client of inst. A *credentialError means the instance's
// endpoints or Secrets do not allow building one (checked in that order: no
// Secret is read for a MISP the operator may not contact); other errors are
// transient (API server).
func (m *mispClients) Get(ctx context.Context, inst *v1alpha1.MISPInstance) (*misp.Client, error) {
	name := types.NamespacedName{Namespace: inst.Namespace, Name: inst.Name}
	var ee *trust.EndpointError
	if err := trust.CheckEndpoints(inst, m.allowed); errors.As(err, &ee) {
		m.Forget(name)
		return nil, &credentialError{Reason: ee.Reason, Message: upperFirst(ee.Message) + "."}
	}
	keyRef, caRef := trust.SecretRefs(inst)
	keyRV, err := m.secretVersion(ctx, inst.Namespace, keyRef.Name)
	if err != nil {
		return nil, err
	}
	caRV := ""
	if caRef != nil {
		if caRV, err = m.secretVersion(ctx, inst.Namespace, caRef.Name); err != nil {
			if ce := (*credentialError)(nil); errors.As(err, &ce) {
				ce.Reason = ReasonCABundleNotFound
			}
			return nil, err
		}
	}
	cacheKey := clientKey(inst, keyRef, caRef, keyRV, caRV)

	m.mu.Lock()
	e, ok := m.entries[name]
	m.mu.Unlock()
	if ok && e.key == cacheKey {
		return e.client, nil
	}

	opts := trust.ClientOptions(m.template, inst)
	if opts.APIKey, err = m.secretValue(ctx, inst.Namespace, keyRef, ReasonSecretNotFound, ReasonKeyMissing, "API key"); err != nil {
		return nil, err
	}
	if caRef != nil {
		ca, err := m.secretValue(ctx, inst.Namespace, *caRef, ReasonCABundleNotFound, ReasonCABundleNotFound, "CA bundle")
		if err != nil {
			return nil, err
		}
		opts.CABundle = []byte(ca)
	}
	opts.Logger = opts.Logger.WithValues("mispinstance", name.String())
	c, err := misp.New(opts)
	if err != nil {
		// misp.New never quotes the key; its errors name the problem.
		reason := ReasonInvalidConfiguration
		switch {
		case strings.Contains(err.Error(), "CABundle"):
			reason = ReasonCABundleInvalid
		case strings.Contains(err.Error(), "APIKey"):
			reason = ReasonKeyMissing
		}
		return nil, &credentialError{Reason: reason, Message: fmt.Sprintf("Cannot build a MISP client: %v.", err)}
	}
	m.mu.Lock()
	m.entries[name] = clientEntry{key: cacheKey, client: c}
	m.mu.Unlock()
	return c, nil
}

// Forget drops the client of a deleted instance and its MISP metrics series.
func (m *mispClients) Forget(name types.NamespacedName) {
	m.mu.Lock()
	delete(m.entries, name)
	m.mu.Unlock()
	m.template.Metrics.Forget(name.String())
}

// secretNames are the Secrets an instance reads (the index of the Secret watch).
func secretNames(inst *v1alpha1.MISPInstance) []string {
	keyRef, caRef := trust.SecretRefs(inst)
	names := []string{keyRef.Name}
	if caRef != nil && caRef.Name != keyRef.Name {
		names = append(names, caRef.Name)
	}
	return names
}

func clientKey(inst *v1alpha1.MISPInstance, keyRef v1alpha1.SecretKeyReference, caRef *v1alpha1.SecretKeyReference, keyRV, caRV string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", inst.UID, inst.Spec.URL, keyRef.Name, keyRef.Key)
	fmt.Fprintf(h, "%s\x00", keyRV)
	if caRef != nil {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00", caRef.Name, caRef.Key, caRV)
	}
	if t := inst.Spec.TLS; t != nil {
		fmt.Fprintf(h, "%t\x00", t.InsecureSkipVerify)
	}
	if a := inst.Spec.API; a != nil {
		fmt.Fprintf(h, "%d\x00", a.RequestsPerSecond)
		if a.Timeout != nil {
			fmt.Fprintf(h, "%s\x00", a.Timeout.Duration)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// secretVersion reads a Secret's resourceVersion from the metadata cache.
func (m *mispClients) secretVersion(ctx context.Context, ns, name string) (string, error) {
	var pm metav1.PartialObjectMetadata
	pm.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := m.meta.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &pm); err != nil {
		if apierrors.IsNotFound(err) {
			return "", &credentialError{Reason: ReasonSecretNotFound, Message: fmt.Sprintf("Secret %q does not exist in namespace %s.", name, ns)}
		}
		return "", fmt.Errorf("read metadata of Secret %s/%s: %w", ns, name, err)
	}
	if !trust.Allowed(&pm) {
		return "", &credentialError{Reason: ReasonSecretNotAllowed, Message: trust.NotAllowedMessage("Secret", ns, name) + "."}
	}
	return pm.ResourceVersion, nil
}

// secretValue reads one key of a Secret from the API server.
func (m *mispClients) secretValue(ctx context.Context, ns string, ref v1alpha1.SecretKeyReference, notFound, missing, what string) (string, error) {
	var s corev1.Secret
	if err := m.live.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return "", &credentialError{Reason: notFound, Message: fmt.Sprintf("Secret %q does not exist in namespace %s.", ref.Name, ns)}
		}
		return "", fmt.Errorf("read Secret %s/%s: %w", ns, ref.Name, err)
	}
	// Checked again on the object whose value is used: the metadata cache may
	// lag behind a label removal.
	if !trust.Allowed(&s) {
		return "", &credentialError{Reason: ReasonSecretNotAllowed, Message: trust.NotAllowedMessage("Secret", ns, ref.Name) + "."}
	}
	v, ok := s.Data[ref.Key]
	if !ok || len(strings.TrimSpace(string(v))) == 0 {
		return "", &credentialError{Reason: missing, Message: fmt.Sprintf("Secret %q has no %s under key %q.", ref.Name, what, ref.Key)}
	}
	return string(v), nil
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
