package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/hack/proc"
)

// demo holds everything the demo started, so cleanup can stop all of it.
type demo struct {
	root, bin, work string
	out             io.Writer
	verbose         bool
	started         time.Time

	env        *envtest.Environment
	kubeconfig string
	k8s        client.Client

	mu    sync.Mutex
	procs map[string]*proc.Process

	mispURL, zmqEndpoint string
	apiKey, zmqPassword  string
	// metricsAddr is each operator process's Prometheus endpoint (host:port).
	metricsAddr map[string]string
}

func (d *demo) step(msg string) {
	fmt.Fprintf(d.out, "[%5.1fs] %s\n", time.Since(d.started).Seconds(), msg)
}

func (d *demo) startCluster() error {
	d.env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(d.root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := d.env.Start()
	if err != nil {
		return fmt.Errorf("start kube-apiserver and etcd: %w", err)
	}
	user, err := d.env.ControlPlane.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		return fmt.Errorf("create a kubeconfig user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("render kubeconfig: %w", err)
	}
	d.kubeconfig = filepath.Join(d.work, "kubeconfig")
	if err := os.WriteFile(d.kubeconfig, kc, 0o600); err != nil {
		return err
	}
	scheme, err := v1alpha1.NewScheme()
	if err != nil {
		return err
	}
	d.k8s, err = client.New(user.Config(), client.Options{Scheme: scheme})
	return err
}

func (d *demo) startMISP(ctx context.Context) error {
	d.apiKey = randomAlnum(40)
	d.zmqPassword = randomAlnum(24)
	httpAddr, zmqAddr := proc.FreeAddr(), proc.FreeAddr()
	d.mispURL = "http://" + httpAddr
	d.zmqEndpoint = "tcp://" + zmqAddr
	p, err := d.spawn(ctx, "mispsim", filepath.Join(d.bin, "mispsim"),
		[]string{"-listen", httpAddr, "-zmq-listen", zmqAddr, "-zmq-user", "curator",
			"-seed", filepath.Join(d.root, "hack", "demo", "seed.json"), "-background-jobs"},
		// Secrets go through the environment, never the process list.
		[]string{"MISPSIM_API_KEY=" + d.apiKey, "MISPSIM_ZMQ_PASSWORD=" + d.zmqPassword})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fmt.Errorf("mispsim exited at start; see %s", p.LogPath)
		}
		var v map[string]any
		if err := d.mispGET(ctx, "/servers/getVersion", &v); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("mispsim did not answer within 20s; see %s", p.LogPath)
}

// startOperator runs one of the operator's processes the way its Deployment
// does, pointed at the demo cluster by a kubeconfig.
func (d *demo) startOperator(ctx context.Context, component string) error {
	metrics := proc.FreeAddr()
	args := []string{component,
		"--kubeconfig", d.kubeconfig,
		"--metrics-bind-address", metrics,
		"--health-probe-bind-address", proc.FreeAddr(),
		"--leader-election-namespace", demoNamespace,
	}
	d.mu.Lock()
	if d.metricsAddr == nil {
		d.metricsAddr = map[string]string{}
	}
	d.metricsAddr[component] = metrics
	d.mu.Unlock()
	_, err := d.spawn(ctx, component, filepath.Join(d.bin, "misp-trust-operator"), args, nil)
	return err
}

func (d *demo) stopProcess(name string) {
	d.mu.Lock()
	p := d.procs[name]
	delete(d.procs, name)
	d.mu.Unlock()
	if p != nil {
		p.Stop()
	}
}

func (d *demo) cleanup() {
	d.mu.Lock()
	procs := d.procs
	d.procs = nil
	d.mu.Unlock()
	for _, p := range procs {
		p.Stop()
	}
	if d.env != nil {
		if err := d.env.Stop(); err != nil {
			fmt.Fprintf(d.out, "stop kube-apiserver and etcd: %v\n", err)
		}
	}
}

func (d *demo) spawn(ctx context.Context, name, path string, args, env []string) (*proc.Process, error) {
	var echo io.Writer
	if d.verbose {
		echo = prefixWriter(d.out, name)
	}
	p, err := proc.Start(d.work, name, path, args, env, echo)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.procs == nil {
		d.procs = map[string]*proc.Process{}
	}
	d.procs[name] = p
	d.mu.Unlock()
	return p, nil
}

func prefixWriter(w io.Writer, name string) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(w, "  %-10s| %s\n", name, sc.Text())
		}
	}()
	return pw
}

func randomAlnum(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// mispGET calls the MISP double's REST API as the operator would.
func (d *demo) mispGET(ctx context.Context, path string, into any) error {
	return d.mispDo(ctx, http.MethodGet, path, "", into)
}

func (d *demo) mispDo(ctx context.Context, method, path, body string, into any) error {
	req, err := http.NewRequestWithContext(ctx, method, d.mispURL+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", d.apiKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if into != nil {
		return json.Unmarshal(data, into)
	}
	return nil
}
