package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
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
	procs map[string]*process

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
	httpAddr, zmqAddr := freeAddr(), freeAddr()
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
		if p.exited() {
			return fmt.Errorf("mispsim exited at start; see %s", p.logPath)
		}
		var v map[string]any
		if err := d.mispGET(ctx, "/servers/getVersion", &v); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("mispsim did not answer within 20s; see %s", p.logPath)
}

// startOperator runs one of the operator's processes the way its Deployment
// does, pointed at the demo cluster by a kubeconfig.
func (d *demo) startOperator(ctx context.Context, component string) error {
	metrics := freeAddr()
	args := []string{component,
		"--kubeconfig", d.kubeconfig,
		"--metrics-bind-address", metrics,
		"--health-probe-bind-address", freeAddr(),
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
		p.stop()
	}
}

func (d *demo) cleanup() {
	d.mu.Lock()
	procs := d.procs
	d.procs = nil
	d.mu.Unlock()
	for _, p := range procs {
		p.stop()
	}
	if d.env != nil {
		if err := d.env.Stop(); err != nil {
			fmt.Fprintf(d.out, "stop kube-apiserver and etcd: %v\n", err)
		}
	}
}

// process is one child process with its log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

func (d *demo) spawn(ctx context.Context, name, path string, args, env []string) (*process, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%s: %w (run `make demo`, which builds it)", path, err)
	}
	logPath := filepath.Join(d.work, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	// Its own process group: a Ctrl-C on the demo reaches the demo, which then
	// stops every child in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var sink io.Writer = logFile
	if d.verbose {
		sink = io.MultiWriter(logFile, prefixWriter(d.out, name))
	}
	cmd.Stdout, cmd.Stderr = sink, sink
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	d.mu.Lock()
	if d.procs == nil {
		d.procs = map[string]*process{}
	}
	d.procs[name] = p
	d.mu.Unlock()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks politely (SIGTERM, as the kubelet does), then insists.
func (p *process) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
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

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("no free loopback port: %v", err))
	}
	defer ln.Close()
	return ln.Addr().String()
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
