package curator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/trust"
)

// configError is a MISPInstance the curator cannot run a pipeline for until a person fixes
// it (a Secret or key is missing). Its message never holds a secret value.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// credentials are what a pipeline needs from the instance's Secrets.
type credentials struct {
	apiKey      string
	caBundle    []byte
	zmqUser     string
	zmqPassword string
	// versions identifies the Secret contents (uid and resourceVersion of each), so a
	// rotated Secret restarts the pipeline; it holds no secret value.
	versions string
}

// readCredentials reads the referenced Secrets from the API server (never from a cache:
// the curator does not keep Secrets in memory).
func readCredentials(ctx context.Context, live client.Reader, inst *v1alpha1.MISPInstance) (credentials, error) {
	var c credentials
	var versions []string
	read := func(name, what string, keys ...string) ([]string, error) {
		var s corev1.Secret
		if err := live.Get(ctx, types.NamespacedName{Namespace: inst.Namespace, Name: name}, &s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &configError{fmt.Sprintf("Secret %q (%s) does not exist in namespace %s", name, what, inst.Namespace)}
			}
			return nil, fmt.Errorf("read Secret %s/%s (%s): %w", inst.Namespace, name, what, err)
		}
		if !trust.Allowed(&s) {
			return nil, &configError{trust.NotAllowedMessage("Secret", inst.Namespace, name)}
		}
		versions = append(versions, string(s.UID)+"/"+s.ResourceVersion)
		out := make([]string, len(keys))
		for i, k := range keys {
			v := strings.TrimSpace(string(s.Data[k]))
			if v == "" {
				return nil, &configError{fmt.Sprintf("Secret %q has no %s under key %q", name, what, k)}
			}
			out[i] = v
		}
		return out, nil
	}

	keyRef, caRef := trust.SecretRefs(inst)
	v, err := read(keyRef.Name, "MISP API key", keyRef.Key)
	if err != nil {
		return c, err
	}
	c.apiKey = v[0]
	if caRef != nil {
		v, err := read(caRef.Name, "CA bundle", caRef.Key)
		if err != nil {
			return c, err
		}
		c.caBundle = []byte(v[0])
	}
	if z := inst.Spec.ZeroMQ; z != nil && z.CredentialsSecretRef != nil {
		v, err := read(z.CredentialsSecretRef.Name, "ZeroMQ PLAIN credentials", trust.ZeroMQUsernameKey, trust.ZeroMQPasswordKey)
		if err != nil {
			return c, err
		}
		c.zmqUser, c.zmqPassword = v[0], v[1]
	}
	c.versions = strings.Join(versions, ",")
	return c, nil
}

// pipelineKey identifies everything a running pipeline was built from, except dryRun
// (switched in place) and the policies (the index is swapped in place): when it changes,
// the pipeline restarts.
func pipelineKey(inst *v1alpha1.MISPInstance, creds credentials) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", inst.UID, inst.Spec.URL, creds.versions)
	if t := inst.Spec.TLS; t != nil {
		fmt.Fprintf(h, "tls\x00%t\x00", t.InsecureSkipVerify)
		if t.CASecretRef != nil {
			fmt.Fprintf(h, "%s\x00%s\x00", t.CASecretRef.Name, t.CASecretRef.Key)
		}
	}
	fmt.Fprintf(h, "%s\x00%s\x00", inst.Spec.APIKeySecretRef.Name, inst.Spec.APIKeySecretRef.Key)
	if z := inst.Spec.ZeroMQ; z != nil {
		fmt.Fprintf(h, "zmq\x00%s\x00", z.Endpoint)
		if z.CredentialsSecretRef != nil {
			fmt.Fprintf(h, "%s\x00", z.CredentialsSecretRef.Name)
		}
	}
	if a := inst.Spec.API; a != nil {
		fmt.Fprintf(h, "api\x00%d\x00", a.RequestsPerSecond)
		if a.Timeout != nil {
			fmt.Fprintf(h, "%s\x00", a.Timeout.Duration)
		}
	}
	if cu := inst.Spec.Curation; cu != nil {
		fmt.Fprintf(h, "cur\x00%d\x00", cu.Concurrency)
		if cu.PushDebounce != nil {
			fmt.Fprintf(h, "%s\x00", cu.PushDebounce.Duration)
		}
		if c := cu.CatchUp; c != nil {
			if c.Interval != nil {
				fmt.Fprintf(h, "i%s\x00", c.Interval.Duration)
			}
			if c.Lookback != nil {
				fmt.Fprintf(h, "l%s\x00", c.Lookback.Duration)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// secretNames are the Secrets an instance reads.
func secretNames(inst *v1alpha1.MISPInstance) []string {
	names := []string{inst.Spec.APIKeySecretRef.Name}
	if t := inst.Spec.TLS; t != nil && t.CASecretRef != nil {
		names = append(names, t.CASecretRef.Name)
	}
	if z := inst.Spec.ZeroMQ; z != nil && z.CredentialsSecretRef != nil {
		names = append(names, z.CredentialsSecretRef.Name)
	}
	return names
}
