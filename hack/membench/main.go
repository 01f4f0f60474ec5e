// Command membench measures the memory both components need for a large trust list,
// the way they run in a cluster: a real kube-apiserver and etcd (envtest), the MISP double
// (bin/mispsim) and the operator's controller and curator as separate processes, each
// given the memory limit of the chart's defaults through MISPTRUST_MEMORY_LIMIT (the
// variable the chart fills from the container's limit with the downward API).
//
// It creates -orgs organisations spread over -policies OrgTrustPolicies of one
// MISPInstance, read from organisationsFrom ConfigMaps of -per-configmap lines each (a
// fraction -overlap of each policy's organisations is also listed by the next policy, so
// precedence has work to do), waits until every policy is Ready and the curator has
// indexed every organisation, then waits for one warninglist resync and counts the MISP
// calls it made. It prints ONE JSON line: peak RSS (VmHWM) of each process against its
// limit, how long reconcile and index took, and the calls of the no-op resync.
//
//	make membench MEMBENCH_FLAGS="-orgs 500000 -policies 1"
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/hack/proc"
	"github.com/misptrust/misp-trust-operator/hack/testenv"
)

const (
	namespace = "membench"
	apiKey    = "membenchmembenchmembenchmembenchmembench"
	mib       = 1 << 20
)

type config struct {
	orgs, policies, perConfigMap int
	overlap                      float64
	controllerLimit              int64
	curatorLimit                 int64
	resync                       time.Duration
	timeout                      time.Duration
	bin, root                    string
	keep                         bool
}

type result struct {
	Orgs                  int            `json:"orgs"`
	Policies              int            `json:"policies"`
	ConfigMaps            int            `json:"configmaps"`
	ControllerPeakRSSMiB  float64        `json:"controller_peak_rss_mib"`
	ControllerLimitMiB    int64          `json:"controller_limit_mib"`
	CuratorPeakRSSMiB     float64        `json:"curator_peak_rss_mib"`
	CuratorLimitMiB       int64          `json:"curator_limit_mib"`
	ReconcileSeconds      float64        `json:"reconcile_seconds"`
	IndexSeconds          float64        `json:"index_seconds"`
	IndexedOrgs           int            `json:"indexed_orgs"`
	ResyncCalls           map[string]int `json:"resync_calls"`
	ResyncViews           int            `json:"resync_views"`
	ResyncBytesServed     int64          `json:"resync_bytes_served"`
	ControllerRSSAfterMiB float64        `json:"controller_rss_after_resync_mib"`
	ReadyAfterResync      bool           `json:"ready_after_resync"`
	WithinLimits          bool           `json:"within_limits"`
}

func main() {
	var c config
	var ctrlLimit, curLimit int
	flag.IntVar(&c.orgs, "orgs", 500_000, "organisations in total")
	flag.IntVar(&c.policies, "policies", 5, "OrgTrustPolicies of the one MISPInstance")
	flag.IntVar(&c.perConfigMap, "per-configmap", 18_000, "organisation lines per ConfigMap (each stays under the 1 MiB object limit)")
	flag.Float64Var(&c.overlap, "overlap", 0.01, "fraction of each policy's organisations also listed by the next policy")
	flag.IntVar(&ctrlLimit, "controller-limit-mib", 256, "the controller's memory limit (the chart's default)")
	flag.IntVar(&curLimit, "curator-limit-mib", 512, "the curator's memory limit (the chart's default)")
	flag.DurationVar(&c.resync, "resync", 20*time.Second, "the controller's --resync-interval (one resync is measured)")
	flag.DurationVar(&c.timeout, "timeout", 15*time.Minute, "how long reconcile and index may take")
	flag.StringVar(&c.bin, "bin", "bin", "folder holding misp-trust-operator and mispsim (make build)")
	flag.StringVar(&c.root, "root", ".", "repository root (config/crd/bases is read from there)")
	flag.BoolVar(&c.keep, "keep", false, "keep the work folder (logs) even on success")
	flag.Parse()
	c.controllerLimit, c.curatorLimit = int64(ctrlLimit)*mib, int64(curLimit)*mib

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "membench:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if !res.WithinLimits || !res.ReadyAfterResync {
		fmt.Fprintln(os.Stderr, "membench: a component went over its memory limit, or the policies are not Ready after the resync")
		os.Exit(2)
	}
}

func run(ctx context.Context, c config) (res result, err error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return res, errors.New("KUBEBUILDER_ASSETS is not set: run `make membench`")
	}
	root, err := filepath.Abs(c.root)
	if err != nil {
		return res, err
	}
	bin := c.bin
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(root, bin)
	}
	work, err := os.MkdirTemp("", "misp-trust-membench-")
	if err != nil {
		return res, err
	}
	var procs []*proc.Process
	var env *testenv.Env
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].Stop()
		}
		if env != nil {
			_ = env.Stop()
		}
		if err == nil && !c.keep {
			_ = os.RemoveAll(work)
		} else {
			fmt.Fprintf(os.Stderr, "membench: logs in %s\n", work)
		}
	}()

	if env, err = testenv.Start(root, nil); err != nil {
		return res, err
	}
	user, err := env.AddUser(envtest.User{Name: "membench", Groups: []string{"system:masters"}}, env.Config)
	if err != nil {
		return res, err
	}
	kubeconfig := filepath.Join(work, "kubeconfig")
	if err := testenv.WriteKubeconfig(user.Config(), kubeconfig, namespace); err != nil {
		return res, err
	}
	k8s := env.Client

	mispAddr := proc.FreeAddr()
	misp, err := spawn(work, "mispsim", filepath.Join(bin, "mispsim"), []string{"-listen", mispAddr, "-no-zmq"},
		[]string{"MISPSIM_API_KEY=" + apiKey})
	if err != nil {
		return res, err
	}
	procs = append(procs, misp)
	mispURL := "http://" + mispAddr
	if err := waitFor(ctx, 20*time.Second, func() (bool, error) { _, err := simStats(ctx, mispURL); return err == nil, nil }); err != nil {
		return res, fmt.Errorf("mispsim did not start: %w", err)
	}

	cms, err := createObjects(ctx, k8s, c, mispURL)
	if err != nil {
		return res, err
	}
	res.Orgs, res.Policies, res.ConfigMaps = c.orgs, c.policies, cms
	res.ControllerLimitMiB, res.CuratorLimitMiB = c.controllerLimit/mib, c.curatorLimit/mib

	start := time.Now()
	common := []string{"--kubeconfig", kubeconfig, "--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--leader-elect=false"}
	ctrlProc, err := spawn(work, "controller", filepath.Join(bin, "misp-trust-operator"),
		append([]string{"controller", "--resync-interval", c.resync.String()}, common...),
		[]string{fmt.Sprintf("MISPTRUST_MEMORY_LIMIT=%d", c.controllerLimit)})
	if err != nil {
		return res, err
	}
	procs = append(procs, ctrlProc)
	curProc, err := spawn(work, "curator", filepath.Join(bin, "misp-trust-operator"), append([]string{"curator"}, common...),
		[]string{fmt.Sprintf("MISPTRUST_MEMORY_LIMIT=%d", c.curatorLimit)})
	if err != nil {
		return res, err
	}
	procs = append(procs, curProc)

	indexed := regexp.MustCompile(`"curation pipeline started".*"organisations":(\d+)`)
	readyAt, indexAt := time.Time{}, time.Time{}
	err = waitFor(ctx, c.timeout, func() (bool, error) {
		for _, p := range []*proc.Process{ctrlProc, curProc} {
			if p.Exited() {
				return false, fmt.Errorf("%s exited (out of memory?); see %s", p.Name, p.LogPath)
			}
		}
		if indexAt.IsZero() {
			if m := lastMatch(curProc.LogPath, indexed); m != nil {
				res.IndexedOrgs, _ = strconv.Atoi(m[1])
				indexAt = time.Now()
			}
		}
		if readyAt.IsZero() {
			ok, err := allReady(ctx, k8s, c.policies)
			if err != nil {
				return false, err
			}
			if ok {
				readyAt = time.Now()
			}
		}
		return !readyAt.IsZero() && !indexAt.IsZero(), nil
	})
	if err != nil {
		return res, err
	}
	res.ReconcileSeconds = readyAt.Sub(start).Seconds()
	res.IndexSeconds = indexAt.Sub(start).Seconds()

	// One resync: every list is read back (or, when nothing changed, only checked).
	before, err := simStats(ctx, mispURL)
	if err != nil {
		return res, err
	}
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(c.resync*6/5 + 5*time.Second):
	}
	after, err := simStats(ctx, mispURL)
	if err != nil {
		return res, err
	}
	res.ResyncCalls = map[string]int{}
	for route, n := range after.Calls {
		if d := n - before.Calls[route]; d > 0 {
			res.ResyncCalls[route] = d
		}
	}
	res.ResyncViews = res.ResyncCalls["/warninglists/view"]
	res.ResyncBytesServed = after.BytesServed - before.BytesServed
	if ctrlProc.Exited() || curProc.Exited() {
		return res, errors.New("a component exited during the resync")
	}
	if res.ReadyAfterResync, err = allReady(ctx, k8s, c.policies); err != nil {
		return res, err
	}

	res.ControllerPeakRSSMiB = procKiB(ctrlProc.Pid(), "VmHWM") / 1024
	res.CuratorPeakRSSMiB = procKiB(curProc.Pid(), "VmHWM") / 1024
	res.ControllerRSSAfterMiB = procKiB(ctrlProc.Pid(), "VmRSS") / 1024
	res.WithinLimits = res.ControllerPeakRSSMiB < float64(res.ControllerLimitMiB) && res.CuratorPeakRSSMiB < float64(res.CuratorLimitMiB) &&
		res.IndexedOrgs == c.orgs
	return res, nil
}

// createObjects creates the namespace, the API key Secret, the MISPInstance, the
// ConfigMaps and the policies; it returns the number of ConfigMaps.
func createObjects(ctx context.Context, k8s client.Client, c config, mispURL string) (int, error) {
	allow := map[string]string{"misptrust.io/allow": "true"}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return 0, err
	}
	if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "misp-api", Labels: allow},
		StringData: map[string]string{"apiKey": apiKey}}); err != nil {
		return 0, err
	}
	inst := &v1alpha1.MISPInstance{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "misp"},
		Spec: v1alpha1.MISPInstanceSpec{URL: mispURL, AllowInsecureHTTP: true, APIKeySecretRef: v1alpha1.SecretKeyReference{Name: "misp-api"}}}
	if err := k8s.Create(ctx, inst); err != nil {
		return 0, err
	}
	per := c.orgs / c.policies
	extra := int(float64(per) * c.overlap)
	cms := 0
	for p := 0; p < c.policies; p++ {
		first, last := p*per, (p+1)*per+extra // [first, last) wraps over the total
		if p == c.policies-1 {
			last = c.orgs + extra
		}
		pol := &v1alpha1.OrgTrustPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("level-%d", p)},
			Spec: v1alpha1.OrgTrustPolicySpec{InstanceRef: v1alpha1.InstanceReference{Name: "misp"},
				SourceReliability: string(rune('a' + p%6)), Publish: p == 0}}
		for from := first; from < last; from += c.perConfigMap {
			to := min(from+c.perConfigMap, last)
			var b strings.Builder
			for i := from; i < to; i++ {
				n := i%c.orgs + 1
				fmt.Fprintf(&b, "%08x-0000-4000-8000-%012x # Org %d\n", n, n, n)
			}
			name := fmt.Sprintf("orgs-%d-%d", p, from)
			if err := k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: allow},
				Data: map[string]string{"list": b.String()}}); err != nil {
				return 0, fmt.Errorf("create ConfigMap %s: %w", name, err)
			}
			pol.Spec.OrganisationsFrom = append(pol.Spec.OrganisationsFrom, v1alpha1.ConfigMapKeyReference{Name: name, Key: "list"})
			cms++
		}
		if err := k8s.Create(ctx, pol); err != nil {
			return 0, fmt.Errorf("create OrgTrustPolicy %s: %w", pol.Name, err)
		}
	}
	return cms, nil
}

func allReady(ctx context.Context, k8s client.Client, want int) (bool, error) {
	var list v1alpha1.OrgTrustPolicyList
	if err := k8s.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return false, err
	}
	ready := 0
	for _, p := range list.Items {
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
		if c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == p.Generation {
			ready++
		}
	}
	return ready == want, nil
}

type stats struct {
	Calls       map[string]int `json:"calls"`
	BytesServed int64          `json:"bytes_served"`
}

func simStats(ctx context.Context, url string) (stats, error) {
	var s stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/_sim/stats", nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("/_sim/stats: %s", resp.Status)
	}
	return s, json.NewDecoder(io.LimitReader(resp.Body, mib)).Decode(&s)
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// lastMatch returns the submatches of the last line of the file matching re.
func lastMatch(path string, re *regexp.Regexp) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var last []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*mib)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			last = m
		}
	}
	return last
}

// procKiB reads one "Vm…: N kB" line of /proc/<pid>/status.
func procKiB(pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			v, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return v
		}
	}
	return 0
}

func spawn(work, name, path string, args, env []string) (*proc.Process, error) {
	return proc.Start(work, name, path, args, env, nil)
}
