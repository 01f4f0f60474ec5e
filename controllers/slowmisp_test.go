package controllers

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
)

// blackHole accepts TCP connections and never answers, like a MISP whose web
// server hangs; it counts the connections.
func blackHole(t *testing.T) (url string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = &atomic.Int64{}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String(), conns
}

func TestADeadMISPCostsOnlyItsOwnObjects(t *testing.T) {
	t.Parallel()
	// Production defaults: workers, deadlines, retries, backoffs.
	h := newHarness(t, harnessOptions{production: true})
	hole, conns := blackHole(t)
	const dead = 12 // more dead instances than workers
	for i := 0; i < dead; i++ {
		name := fmt.Sprintf("dead-%d", i)
		h.secret(name+"-key", map[string]string{"apiKey": h.misp.AdminKey()})
		inst := &v1alpha1.MISPInstance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns},
			Spec: v1alpha1.MISPInstanceSpec{URL: hole, AllowInsecureHTTP: true, APIKeySecretRef: v1alpha1.SecretKeyReference{Name: name + "-key"}}}
		if err := k8sClient.Create(h.ctx, inst); err != nil {
			t.Fatal(err)
		}
		h.createPolicy(policy(name+"-p", name, "a", org(i+1, "x")))
	}
	start := time.Now()
	for i := 0; i < 2; i++ {
		name := fmt.Sprintf("live-%d", i)
		h.secret(name+"-key", map[string]string{"apiKey": h.misp.AdminKey()})
		h.instance(name, name+"-key")
		p := policy(name+"-p", name, "a", org(100+i, "y"))
		p.Spec.WarninglistName = name
		h.createPolicy(p)
	}
	for i := 0; i < 2; i++ {
		h.waitPolicy(fmt.Sprintf("live-%d-p", i), synced)
	}
	// One round of dead checks (15s each) at most stands before the live ones.
	if took := time.Since(start); took > 2*DefaultCheckTimeout+5*time.Second {
		t.Errorf("the live instances were served after %s, behind %d dead ones", took, dead)
	}
	t.Logf("live instances synced after %s", time.Since(start).Round(100*time.Millisecond))

	h.waitInstance("dead-0", func(i *v1alpha1.MISPInstance) error {
		return wantCondition(i.Status.Conditions, v1alpha1.ConditionReachable, metav1.ConditionFalse, ReasonUnreachable, i.Generation)
	})
	// The dead ones back off (5s, 10s, 20s …): a bounded number of attempts.
	before := conns.Load()
	time.Sleep(20 * time.Second)
	if n := conns.Load() - before; n > 2*dead {
		t.Errorf("%d connections to the dead MISP in 20s from %d instances, want at most %d (backoff)", n, dead, 2*dead)
	}
	// Their policies never called it: gated on their instance.
	p := h.getPolicy("dead-0-p")
	if c := condition(p.Status.Conditions, v1alpha1.ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != ReasonInstanceNotReady {
		t.Errorf("dead policy Ready = %s/%s", c.Status, c.Reason)
	}
}
