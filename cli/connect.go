package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// mispReader is every MISP call these commands make: reads only, so no code path here
// can change MISP (*misp.Client satisfies it).
type mispReader interface {
	ListWarninglists(ctx context.Context) ([]misp.Warninglist, error)
	FindWarninglist(ctx context.Context, name string) (*misp.Warninglist, error)
	ViewWarninglist(ctx context.Context, id string) (*misp.Warninglist, error)
	EventMeta(ctx context.Context, eventUUID string) (misp.EventMeta, error)
	EventMetaByID(ctx context.Context, id string) (misp.EventMeta, error)
	SearchEventsPage(ctx context.Context, q misp.EventSearch) (misp.EventPage, error)
	Organisations(ctx context.Context) ([]misp.Organisation, error)
	ServerLinks(ctx context.Context) ([]misp.ServerLink, error)
}

// kubeFlags are kubectl's connection flags; KUBECONFIG is honoured as kubectl does.
type kubeFlags struct {
	kubeconfig, context, namespace string
}

func (k *kubeFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "Path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config).")
	fs.StringVar(&k.context, "context", "", "The kubeconfig context to use.")
	fs.StringVarP(&k.namespace, "namespace", "n", "", "Namespace (default: the context's namespace, else \"default\").")
}

func (k *kubeFlags) clientConfig() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	over := &clientcmd.ConfigOverrides{CurrentContext: k.context}
	over.Context.Namespace = k.namespace
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, over)
}

// Namespace is -n, else the kubeconfig context's namespace, else "default"; without a
// kubeconfig (export before anything is installed) it is -n or "default".
func (k *kubeFlags) Namespace() string {
	if k.namespace != "" {
		return k.namespace
	}
	ns, _, err := k.clientConfig().Namespace()
	if err != nil || ns == "" {
		return "default"
	}
	return ns
}

// connect returns a client whose every write is a server-side dry run
// (client.NewDryRunClient): plan's validation is such a write, and nothing else
// here can change the cluster.
func (k *kubeFlags) connect() (client.Client, error) {
	cfg, err := k.clientConfig().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.UserAgent = "misp-trust-operator-cli"
	cfg.Timeout = 30 * time.Second
	scheme, err := v1alpha1.NewScheme()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connect to the Kubernetes API at %s: %w", cfg.Host, err)
	}
	return client.NewDryRunClient(c), nil
}

// instanceRef parses --instance "[namespace/]name".
func instanceRef(flag, defaultNS string) (types.NamespacedName, error) {
	if flag == "" {
		return types.NamespacedName{}, errors.New("--instance is required ([namespace/]name of a MISPInstance)")
	}
	ns, name, found := strings.Cut(flag, "/")
	if !found {
		ns, name = defaultNS, flag
	}
	if ns == "" || name == "" || strings.Contains(name, "/") {
		return types.NamespacedName{}, fmt.Errorf("--instance %q: want [namespace/]name", flag)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// mispTemplate are the client settings of these short-lived commands: the MISPInstance's
// rate limit and timeout apply on top (trust.ClientOptions).
func mispTemplate(version string) misp.Options {
	return misp.Options{Timeout: 30 * time.Second, UserAgent: "misp-trust-operator-cli/" + version}
}

// mispForInstance builds a client from a MISPInstance and its Secrets, read with the
// kubeconfig's credentials (the same keys and defaults as the controller: trust.SecretRefs,
// trust.ClientOptions).
func mispForInstance(ctx context.Context, c client.Reader, inst *v1alpha1.MISPInstance, version string) (*misp.Client, error) {
	keyRef, caRef := trust.SecretRefs(inst)
	opts := trust.ClientOptions(mispTemplate(version), inst)
	key, err := secretValue(ctx, c, inst.Namespace, keyRef, "API key")
	if err != nil {
		return nil, err
	}
	opts.APIKey = key
	if caRef != nil {
		ca, err := secretValue(ctx, c, inst.Namespace, *caRef, "CA bundle")
		if err != nil {
			return nil, err
		}
		opts.CABundle = []byte(ca)
	}
	mc, err := misp.New(opts)
	if err != nil {
		return nil, fmt.Errorf("MISPInstance %s/%s: %w", inst.Namespace, inst.Name, err)
	}
	return mc, nil
}

func secretValue(ctx context.Context, c client.Reader, ns string, ref v1alpha1.SecretKeyReference, what string) (string, error) {
	var s corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("Secret %s/%s (MISP %s) does not exist", ns, ref.Name, what)
		}
		return "", fmt.Errorf("read Secret %s/%s (MISP %s): %w", ns, ref.Name, what, err)
	}
	v := strings.TrimSpace(string(s.Data[ref.Key]))
	if v == "" {
		return "", fmt.Errorf("Secret %s/%s has no MISP %s under key %q", ns, ref.Name, what, ref.Key)
	}
	return v, nil
}

// mispFlags reach MISP without a cluster (export before anything is installed).
type mispFlags struct {
	url, keyFile, caFile string
	insecure             bool
}

func (m *mispFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&m.url, "url", "", "MISP base URL; with --api-key-file, MISP is reached directly instead of through the MISPInstance's Secret.")
	fs.StringVar(&m.keyFile, "api-key-file", "", "File holding the MISP API key (never a flag value: it would show in the process list and shell history).")
	fs.StringVar(&m.caFile, "ca-file", "", "PEM CA bundle for MISP's certificate (with --url).")
	fs.BoolVar(&m.insecure, "insecure-skip-verify", false, "Do not verify MISP's TLS certificate (with --url).")
}

func (m *mispFlags) set() bool { return m.url != "" || m.keyFile != "" }

func (m *mispFlags) client(version string) (*misp.Client, error) {
	if m.url == "" || m.keyFile == "" {
		return nil, errors.New("--url and --api-key-file go together")
	}
	key, err := os.ReadFile(m.keyFile)
	if err != nil {
		return nil, fmt.Errorf("read --api-key-file: %w", err)
	}
	opts := mispTemplate(version)
	opts.URL, opts.APIKey, opts.InsecureSkipVerify = m.url, string(key), m.insecure
	if m.caFile != "" {
		if opts.CABundle, err = os.ReadFile(m.caFile); err != nil {
			return nil, fmt.Errorf("read --ca-file: %w", err)
		}
	}
	return misp.New(opts)
}
