package misp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// TestAPIKeyNeverLeaks drives every method through every error path against a hostile MISP
// that echoes the Authorization header into its messages, field errors, redirects and
// values, and checks the key appears in no error, no log line and no metric.
func TestAPIKeyNeverLeaks(t *testing.T) {
	var mode atomic.Value
	release := make(chan struct{})
	var echoed atomic.Int64 // answers that really carried the key
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Authorization")
		q := fmt.Sprintf("%q", key)[1 : len(key)+1] // JSON-safe (the key is alphanumeric anyway)
		send := func(status int, body string, headers ...string) {
			if strings.Contains(body, key) || strings.Contains(strings.Join(headers, " "), key) {
				echoed.Add(1)
			}
			answer(status, body, headers...)(w, r)
		}
		switch mode.Load().(string) {
		case "auth":
			send(403, `{"name":"Authentication failed. Key `+q+` unknown.","message":"Authentication failed. Key `+q+` unknown.","url":"`+r.URL.Path+`"}`)
		case "permission":
			send(403, `{"name":"You do not have permission (`+q+`).","message":"You do not have permission (`+q+`).","url":"/"}`)
		case "validation":
			send(403, `{"saved":false,"name":"Could not save `+q+`","message":"Could not save `+q+`","url":"/","errors":{"`+q+`":["bad key `+q+`"],"list":[{"x":"`+q+`"}]}}`)
		case "notfound":
			send(404, `{"name":"Invalid `+q+`","message":"Invalid `+q+`","url":"/`+q+`"}`)
		case "notallowed":
			send(405, `{"name":"Not with `+q+`","message":"Not with `+q+`","url":"/"}`)
		case "badrequest":
			send(400, `{"name":"Bad `+q+`","message":"Bad `+q+`","url":"/"}`)
		case "ratelimited":
			send(429, `{"name":"Slow down `+q+`","message":"Slow down `+q+`","url":"/"}`, "Retry-After", "3600")
		case "server":
			send(500, `{"name":"Boom `+q+`","message":"Boom `+q+`","url":"/"}`)
		case "html":
			send(502, "<html>bad gateway for "+key+"</html>", "Content-Type", "text/html")
		case "redirect":
			send(302, "", "Location", "/users/login/"+key+"?key="+key)
		case "ok-garbage":
			// 200 answers whose values carry the key where numbers or objects are expected.
			switch {
			case r.URL.Path == "/events/index":
				send(200, `[{"uuid":"`+e1UUID+`","timestamp":"`+q+`"}]`)
			case r.URL.Path == "/warninglists/checkValue":
				send(200, `{"a":[{"id":{"`+q+`":1}}]}`)
			case r.URL.Path == "/warninglists/toggleEnable":
				send(200, `{"saved":false,"errors":"cannot toggle `+q+`"}`)
			case strings.HasPrefix(r.URL.Path, "/warninglists/view/"):
				send(200, `{"Warninglist":{"id":"1","version":"`+q+`"}}`)
			case strings.HasPrefix(r.URL.Path, "/warninglists/delete/"):
				send(302, "", "Location", "/warninglists")
			default:
				send(200, `{"saved":`+"\""+q+"\""+`,"version":{"v":"`+q+`"},"Warninglists":[{"Warninglist":{"id":"1","version":"`+q+`"}}],"Warninglist":{"id":"`+q+`"},"User":{"id":{"a":"`+q+`"}},"Role":{},"value":"`+q+`"}`)
			}
		case "drop":
			dropConnection(w, r)
		case "hang":
			// Read the body first: the server notices the client hanging up only then.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
	}))
	defer srv.Close()
	defer close(release) // runs before srv.Close

	logs := &logSink{}
	reg := prometheus.NewRegistry()
	c, err := New(Options{URL: srv.URL, APIKey: testKey, QPS: -1, MaxRetries: 1, RetryBaseDelay: time.Millisecond,
		RetryMaxDelay: 5 * time.Millisecond, Timeout: 50 * time.Millisecond, Logger: logs.logger(), Metrics: NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	wl := Warninglist{Name: "n", Description: "d", Entries: []WarninglistEntry{{Value: "v"}}}
	methods := map[string]func() error{
		"Version":   func() error { _, err := c.Version(ctx); return err },
		"WhoAmI":    func() error { _, err := c.WhoAmI(ctx); return err },
		"HostOrgID": func() error { _, err := c.HostOrgID(ctx); return err },
		"EventMeta": func() error { _, err := c.EventMeta(ctx, e1UUID); return err },
		"SearchEvents": func() error {
			_, err := c.SearchEvents(ctx, EventSearch{OrgUUIDs: []string{partnerHigh}, Limit: 5})
			return err
		},
		"AttachTags":            func() error { return c.AttachTags(ctx, e1UUID, []string{"tlp:green"}, true) },
		"RemoveTag":             func() error { return c.RemoveTag(ctx, e1UUID, "tlp:green") },
		"Publish":               func() error { _, err := c.Publish(ctx, e1UUID); return err },
		"ListWarninglists":      func() error { _, err := c.ListWarninglists(ctx); return err },
		"FindWarninglist":       func() error { _, err := c.FindWarninglist(ctx, "n"); return err },
		"ViewWarninglist":       func() error { _, err := c.ViewWarninglist(ctx, "1"); return err },
		"AddWarninglist":        func() error { _, err := c.AddWarninglist(ctx, wl); return err },
		"EditWarninglist":       func() error { return c.EditWarninglist(ctx, "1", wl) },
		"SetWarninglistEnabled": func() error { return c.SetWarninglistEnabled(ctx, "1", true) },
		"DeleteWarninglist":     func() error { return c.DeleteWarninglist(ctx, "1") },
		"CheckValues":           func() error { _, err := c.CheckValues(ctx, []string{"a"}); return err },
	}
	modes := []string{"auth", "permission", "validation", "notfound", "notallowed", "badrequest", "ratelimited", "server",
		"html", "redirect", "ok-garbage", "drop", "hang"}
	var texts []string
	failures := 0
	for _, m := range modes {
		mode.Store(m)
		for name, call := range methods {
			err := call()
			if err == nil {
				continue // e.g. Version accepts any version string in ok-garbage
			}
			failures++
			texts = append(texts, fmt.Sprintf("%s/%s: %v | %+v | %#v", m, name, err, err, err))
		}
	}
	// A caller passing the key where an id goes by mistake.
	for _, call := range []func() error{
		func() error { _, err := c.EventMeta(ctx, testKey); return err },
		func() error { _, err := c.ViewWarninglist(ctx, testKey); return err },
		func() error { return c.AttachTags(ctx, testKey+"-x", []string{"t"}, true) },
	} {
		texts = append(texts, fmt.Sprint(call()))
	}
	// Errors from New itself.
	for _, bad := range []string{testKey + " x", testKey + "\x00"} {
		_, err := New(Options{URL: srv.URL, APIKey: bad})
		texts = append(texts, fmt.Sprint(err))
	}
	_, err = New(Options{URL: "ftp://host", APIKey: testKey})
	texts = append(texts, fmt.Sprint(err))

	var metrics bytes.Buffer
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if _, err := expfmt.MetricFamilyToText(&metrics, fam); err != nil {
			t.Fatal(err)
		}
	}
	texts = append(texts, metrics.String())
	texts = append(texts, logs.all()...)

	// The test can fail: the server did echo the key, errors and retry logs were produced.
	if echoed.Load() < 100 || failures < len(modes)*len(methods)-5 || logs.count("retrying MISP request") == 0 {
		t.Fatalf("weak test: %d echoed answers, %d failures, %d log lines", echoed.Load(), failures, len(logs.all()))
	}
	redactedSeen := false
	for _, s := range texts {
		for _, needle := range []string{testKey, testKey[:16], testKey[len(testKey)-16:]} {
			if strings.Contains(s, needle) {
				t.Errorf("API key found in: %s", s)
			}
		}
		redactedSeen = redactedSeen || strings.Contains(s, redacted)
	}
	if !redactedSeen {
		t.Error("no message was redacted: the echoing server did not exercise redaction")
	}
}
