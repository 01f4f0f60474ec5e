package trust

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// AllowLabel is the opt-in every Secret and ConfigMap the operator reads must
// carry, with the value AllowValue. Anyone who may create a MISPInstance or an
// OrgTrustPolicy in a namespace could otherwise make the operator read any
// Secret of that namespace and send it to a URL of their choosing.
const (
	AllowLabel = "misptrust.io/allow"
	AllowValue = "true"
)

// Allowed reports whether an object opted in to being read by the operator.
func Allowed(o metav1.Object) bool { return o.GetLabels()[AllowLabel] == AllowValue }

// NotAllowedMessage says why an object was not read, naming the label to add.
func NotAllowedMessage(kind, namespace, name string) string {
	return fmt.Sprintf("%s %q in namespace %s does not carry the label %s: %q; the operator only reads Secrets and ConfigMaps that opt in",
		kind, name, namespace, AllowLabel, AllowValue)
}

// How long a parsed ConfigMap key stays cached without being used.
const (
	configMapIdle  = time.Hour
	configMapSweep = 10 * time.Minute
)

// ConfigMapOrgs reads organisationsFrom ConfigMap keys for both components:
// the label opt-in is checked before any data is read, each key is parsed
// once per ConfigMap resourceVersion (sibling policies, resyncs and every
// policy change of the curator reuse it), and only the parsed organisations
// are kept, never the ConfigMap's text.
type ConfigMapOrgs struct {
	meta client.Reader // metadata of ConfigMaps (an informer cache)
	live client.Reader // the API server: the data of the few referenced ones
	now  func() time.Time

	mu        sync.Mutex
	m         map[types.NamespacedName]*configMapEntry
	lastSweep time.Time
}

type configMapEntry struct {
	uid  types.UID
	rv   string
	keys map[string]OrgSource
	used time.Time
}

// NewConfigMapOrgs reads metadata from meta (ConfigMaps watched as
// metav1.PartialObjectMetadata) and data from live.
func NewConfigMapOrgs(meta, live client.Reader) *ConfigMapOrgs {
	return &ConfigMapOrgs{meta: meta, live: live, now: time.Now, m: map[types.NamespacedName]*configMapEntry{}}
}

// Reader returns a SourceFunc over the ConfigMaps of namespace ns.
func (c *ConfigMapOrgs) Reader(ctx context.Context, ns string) SourceFunc {
	return func(ref v1alpha1.ConfigMapKeyReference) (OrgSource, error) { return c.Read(ctx, ns, ref) }
}

// Version is the resourceVersion of a ConfigMap from the metadata cache, "" when it does
// not exist: it changes whenever what Read returns may change (the label included).
func (c *ConfigMapOrgs) Version(ctx context.Context, ns, name string) (string, error) {
	pm, err := c.metadata(ctx, types.NamespacedName{Namespace: ns, Name: name})
	if err != nil || pm == nil {
		return "", err
	}
	return string(pm.UID) + "/" + pm.ResourceVersion, nil
}

func (c *ConfigMapOrgs) metadata(ctx context.Context, name types.NamespacedName) (*metav1.PartialObjectMetadata, error) {
	var pm metav1.PartialObjectMetadata
	pm.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	if err := c.meta.Get(ctx, name, &pm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read metadata of ConfigMap %s: %w", name, err)
	}
	return &pm, nil
}

// Read returns the organisations of one ConfigMap key of namespace ns.
func (c *ConfigMapOrgs) Read(ctx context.Context, ns string, ref v1alpha1.ConfigMapKeyReference) (OrgSource, error) {
	name := types.NamespacedName{Namespace: ns, Name: ref.Name}
	pm, err := c.metadata(ctx, name)
	if err != nil {
		return OrgSource{}, err
	}
	if pm == nil {
		c.forget(name)
		return MissingSource(ref), nil
	}
	if !Allowed(pm) {
		return NotAllowedSource(ref, ns), nil
	}
	if src, ok := c.cached(name, pm.UID, pm.ResourceVersion, ref.Key); ok {
		return src, nil
	}
	var cm corev1.ConfigMap
	if err := c.live.Get(ctx, name, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			c.forget(name)
			return MissingSource(ref), nil
		}
		return OrgSource{}, fmt.Errorf("read ConfigMap %s: %w", name, err)
	}
	// The label is checked again on the object whose data is used: the
	// metadata cache may lag behind a label removal.
	if !Allowed(&cm) {
		return NotAllowedSource(ref, ns), nil
	}
	src := MissingSource(ref)
	if v, ok := cm.Data[ref.Key]; ok {
		orgs, problems := ParseOrgList(ConfigMapSource(ref), v)
		// Kept sorted: EffectiveOrgsFrom merges sorted sources without copying them.
		SortOrgs(orgs)
		src = OrgSource{Orgs: orgs, Problems: problems}
	}
	c.store(name, cm.UID, cm.ResourceVersion, ref.Key, src)
	return src, nil
}

// NotAllowedSource is the OrgSource of an organisationsFrom entry whose
// ConfigMap (in namespace ns) does not carry AllowLabel: none of its data is used.
func NotAllowedSource(ref v1alpha1.ConfigMapKeyReference, ns string) OrgSource {
	return OrgSource{Problems: []Problem{{Source: ConfigMapSource(ref), Kind: ProblemNotAllowed,
		Reason: NotAllowedMessage("ConfigMap", ns, ref.Name)}}}
}

func (c *ConfigMapOrgs) cached(name types.NamespacedName, uid types.UID, rv, key string) (OrgSource, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[name]
	if e == nil || e.uid != uid || e.rv != rv {
		return OrgSource{}, false
	}
	src, ok := e.keys[key]
	if ok {
		e.used = c.now()
	}
	return src, ok
}

func (c *ConfigMapOrgs) store(name types.NamespacedName, uid types.UID, rv, key string, src OrgSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	e := c.m[name]
	if e == nil || e.uid != uid || e.rv != rv {
		e = &configMapEntry{uid: uid, rv: rv, keys: map[string]OrgSource{}}
		c.m[name] = e
	}
	e.keys[key] = src
	e.used = now
	if now.Sub(c.lastSweep) >= configMapSweep {
		// ConfigMaps no policy reads any more are dropped after a while.
		c.lastSweep = now
		for n, e := range c.m {
			if now.Sub(e.used) > configMapIdle {
				delete(c.m, n)
			}
		}
	}
}

func (c *ConfigMapOrgs) forget(name types.NamespacedName) {
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}
