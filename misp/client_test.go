package misp

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"
)

// logSink captures every log line (all verbosity levels).
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		s.mu.Lock()
		s.lines = append(s.lines, prefix+" "+args)
		s.mu.Unlock()
	}, funcr.Options{Verbosity: 10})
}

func (s *logSink) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

func (s *logSink) count(substr string) int {
	n := 0
	for _, l := range s.all() {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func TestNewValidatesOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "ok", opts: Options{URL: "https://misp.example", APIKey: testKey}},
		{name: "ok with path prefix and trailing slash", opts: Options{URL: "https://example/misp/", APIKey: testKey}},
		{name: "empty URL", opts: Options{APIKey: testKey}, wantErr: "URL is empty"},
		{name: "ftp", opts: Options{URL: "ftp://misp.example", APIKey: testKey}, wantErr: "must use http or https"},
		{name: "no scheme", opts: Options{URL: "misp.example", APIKey: testKey}, wantErr: "must use http or https"},
		{name: "no host", opts: Options{URL: "https://", APIKey: testKey}, wantErr: "no host"},
		{name: "credentials in URL", opts: Options{URL: "https://u:p@misp.example", APIKey: testKey}, wantErr: "must not contain credentials"},
		{name: "query", opts: Options{URL: "https://misp.example/?a=b", APIKey: testKey}, wantErr: "query or fragment"},
		{name: "empty key", opts: Options{URL: "https://misp.example", APIKey: "  "}, wantErr: "APIKey is empty"},
		{name: "key with an inner newline", opts: Options{URL: "https://misp.example", APIKey: testKey[:20] + "\n" + testKey[20:]}, wantErr: "APIKey contains"},
		{name: "bad CA bundle", opts: Options{URL: "https://misp.example", APIKey: testKey, CABundle: []byte("not pem")}, wantErr: "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts)
			if tt.wantErr == "" {
				if err != nil || c == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), testKey[:20]) {
				t.Fatalf("the key leaked into %q", err)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		c, err := New(Options{URL: "https://misp.example/prefix/", APIKey: " " + testKey + "\n"})
		if err != nil {
			t.Fatal(err)
		}
		if c.base != "https://misp.example/prefix" || c.key != testKey || c.timeout != DefaultTimeout || c.maxRetries != DefaultMaxRetries ||
			c.baseDelay != DefaultRetryBaseDelay || c.maxDelay != DefaultRetryMaxDelay || c.userAgent != DefaultUserAgent ||
			c.limiter.Limit() != rate.Inf || c.limiter.Burst() != DefaultBurst ||
			c.inflight == nil || c.inflight.Limit() != DefaultInitialInFlight || c.inflight.max != DefaultMaxInFlight {
			t.Errorf("defaults not applied: %+v", c)
		}
		c, _ = New(Options{URL: "https://misp.example", APIKey: testKey, MaxRetries: -1, MaxInFlight: -1, QPS: 5})
		if c.maxRetries != 0 {
			t.Errorf("MaxRetries<0 gives %d retries", c.maxRetries)
		}
		if c.inflight != nil {
			t.Error("MaxInFlight<0 still limits the requests in flight")
		}
		if c.limiter.Limit() != 5 {
			t.Errorf("QPS 5 gives a rate ceiling of %v", c.limiter.Limit())
		}
		c, _ = New(Options{URL: "https://misp.example", APIKey: testKey, QPS: -1})
		if c.inflight != nil || c.limiter.Limit() != rate.Inf {
			t.Error("QPS<0 still limits the client")
		}
	})
}

func TestRequestHeaders(t *testing.T) {
	f := newFake(t).on("GET", "/misp/servers/getVersion", replay(t, "real/api/01_servers_getVersion.json"))
	tests := []struct {
		name, ua, wantUA string
	}{
		{name: "default user agent", wantUA: "misp-trust-operator/dev"},
		{name: "custom user agent", ua: "misp-trust-operator/v1.2.3", wantUA: "misp-trust-operator/v1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := f.client(func(o *Options) { o.URL += "/misp/"; o.UserAgent = tt.ua })
			if _, err := c.Version(context.Background()); err != nil {
				t.Fatal(err)
			}
			h := f.last("GET", "/misp/servers/getVersion").Header
			for k, want := range map[string]string{"Authorization": testKey, "Accept": "application/json", "Content-Type": "application/json", "User-Agent": tt.wantUA} {
				if got := h.Values(k); len(got) != 1 || got[0] != want {
					t.Errorf("%s = %q, want exactly %q", k, got, want)
				}
			}
		})
	}
}

const internalError = `{"name":"An Internal Error Has Occurred.","message":"An Internal Error Has Occurred.","url":"/servers/getVersion"}`

func TestRetries(t *testing.T) {
	ok := replay(t, "real/api/01_servers_getVersion.json")
	e500 := answer(500, internalError)
	tests := []struct {
		name       string
		maxRetries int
		handlers   []http.HandlerFunc
		wantErr    error
		wantCalls  int
		wantSleeps int
	}{
		{name: "500, 503 then success", handlers: []http.HandlerFunc{e500, answer(503, "busy", "Content-Type", "text/plain"), ok}, wantCalls: 3, wantSleeps: 2},
		{name: "500 until the retries are spent", handlers: []http.HandlerFunc{e500}, wantErr: ErrServer, wantCalls: 5, wantSleeps: 4},
		{name: "MaxRetries 1", maxRetries: 1, handlers: []http.HandlerFunc{e500}, wantErr: ErrServer, wantCalls: 2, wantSleeps: 1},
		{name: "MaxRetries <0: one attempt", maxRetries: -1, handlers: []http.HandlerFunc{e500}, wantErr: ErrServer, wantCalls: 1},
		{name: "429 without Retry-After then success", handlers: []http.HandlerFunc{answer(429, `{}`), ok}, wantCalls: 2, wantSleeps: 1},
		{name: "429 until the retries are spent", handlers: []http.HandlerFunc{answer(429, `{}`)}, wantErr: ErrRateLimited, wantCalls: 5, wantSleeps: 4},
		{name: "network error then success", handlers: []http.HandlerFunc{dropConnection, ok}, wantCalls: 2, wantSleeps: 1},
		{name: "404 is never retried", handlers: []http.HandlerFunc{replay(t, "real/api/61_events_view_404.json")}, wantErr: ErrNotFound, wantCalls: 1},
		{name: "403 is never retried", handlers: []http.HandlerFunc{replay(t, "real/api/02_servers_getVersion_badkey.json")}, wantErr: ErrUnauthorized, wantCalls: 1},
		{name: "405 is never retried", handlers: []http.HandlerFunc{replay(t, "real/sync/api/76_A_pub_publish_e2.json")}, wantErr: ErrNotAllowed, wantCalls: 1},
		{name: "400 is never retried", handlers: []http.HandlerFunc{answer(400, `{"name":"No valid data received.","message":"No valid data received.","url":"/"}`)}, wantErr: ErrValidation, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t).on("GET", "/servers/getVersion", tt.handlers...)
			c, s := f.client(func(o *Options) { o.MaxRetries = tt.maxRetries })
			_, err := c.Version(context.Background())
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if n := f.count("GET", "/servers/getVersion"); n != tt.wantCalls {
				t.Errorf("%d calls, want %d", n, tt.wantCalls)
			}
			if n := len(s.all()); n != tt.wantSleeps {
				t.Errorf("%d backoff waits, want %d", n, tt.wantSleeps)
			}
			for _, d := range s.all() {
				if d < 0 || d > 50*time.Millisecond {
					t.Errorf("backoff %s outside [0, RetryMaxDelay]", d)
				}
			}
		})
	}
}

func TestNetworkErrorExhausted(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	c, err := New(Options{URL: url, APIKey: testKey, QPS: -1, MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	s := &sleeps{}
	c.sleep = s.sleep
	_, err = c.Version(context.Background())
	var ae *APIError
	if err == nil || errors.As(err, &ae) || !strings.Contains(err.Error(), "read server version") || !strings.Contains(err.Error(), "3 attempt(s)") {
		t.Fatalf("err = %v", err)
	}
	if len(s.all()) != 2 {
		t.Errorf("%d waits, want 2", len(s.all()))
	}
}

func TestRetryAfter(t *testing.T) {
	ok := replay(t, "real/api/01_servers_getVersion.json")
	tests := []struct {
		name       string
		retryAfter string
		ctxTimeout time.Duration
		wantWait   time.Duration
		wantErr    error
		wantCalls  int
	}{
		{name: "seconds", retryAfter: "3", wantWait: 3 * time.Second, wantCalls: 2},
		{name: "HTTP date", retryAfter: time.Now().Add(20 * time.Second).UTC().Format(http.TimeFormat), wantWait: 20 * time.Second, wantCalls: 2},
		{name: "longer than RetryMaxDelay: give up at once", retryAfter: "3600", wantErr: ErrRateLimited, wantCalls: 1},
		{name: "longer than the caller's deadline: give up at once", retryAfter: "20", ctxTimeout: 5 * time.Second, wantErr: ErrRateLimited, wantCalls: 1},
		{name: "garbage falls back to backoff", retryAfter: "soon", wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t).on("GET", "/servers/getVersion", answer(429, `{"name":"Too many requests","message":"Too many requests","url":"/servers/getVersion"}`, "Retry-After", tt.retryAfter), ok)
			c, s := f.client(func(o *Options) { o.RetryMaxDelay = time.Minute })
			ctx := context.Background()
			if tt.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTimeout)
				defer cancel()
			}
			_, err := c.Version(ctx)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if n := f.count("GET", "/servers/getVersion"); n != tt.wantCalls {
				t.Errorf("%d calls, want %d", n, tt.wantCalls)
			}
			waits := s.all()
			if tt.wantWait > 0 {
				// An HTTP-date has a one-second resolution.
				if len(waits) != 1 || waits[0] > tt.wantWait || waits[0] < tt.wantWait-2*time.Second {
					t.Errorf("waits %v, want one of about %s", waits, tt.wantWait)
				}
			}
			var ae *APIError
			if tt.wantErr != nil && (!errors.As(err, &ae) || ae.RetryAfter <= 0 || len(waits) != 0) {
				t.Errorf("want an APIError with RetryAfter and no wait, got %#v, waits %v", err, waits)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-5", 0}, {"7", 7 * time.Second}, {" 7 ", 7 * time.Second}, {"99999999", 24 * time.Hour},
		{"Thu, 26 Nov 2026 20:00:30 GMT", 30 * time.Second}, {"Thu, 26 Nov 2026 19:00:00 GMT", 0}, {"tomorrow", 0}, {"1.5", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestBackoffIsCappedWithFullJitter(t *testing.T) {
	base, max := 500*time.Millisecond, 30*time.Second
	for attempt := 0; attempt < 12; attempt++ {
		ceiling := base << attempt
		if ceiling > max {
			ceiling = max
		}
		var seenLow, seenHigh bool
		for i := 0; i < 2000; i++ {
			d := backoff(base, max, attempt)
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d: backoff %s outside [0, %s]", attempt, d, ceiling)
			}
			seenLow = seenLow || d < ceiling/4
			seenHigh = seenHigh || d > ceiling*3/4
		}
		if !seenLow || !seenHigh {
			t.Errorf("attempt %d: 2000 samples do not spread over [0, %s]", attempt, ceiling)
		}
	}
	if d := backoff(time.Hour, time.Hour, 70); d < 0 || d > time.Hour {
		t.Errorf("overflow: %s", d)
	}
}

func TestContextCanceledDuringBackoff(t *testing.T) {
	f := newFake(t).on("GET", "/servers/getVersion", answer(500, internalError))
	c, _ := f.client(func(o *Options) { o.RetryBaseDelay = time.Hour; o.RetryMaxDelay = time.Hour })
	sleeping := make(chan struct{})
	c.sleep = func(ctx context.Context, d time.Duration) error {
		close(sleeping)
		return sleepCtx(ctx, d) // really wait, until the context ends
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Version(ctx); done <- err }()
	<-sleeping
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "HTTP 500") {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Version did not return after cancel")
	}
	if n := f.count("GET", "/servers/getVersion"); n != 1 {
		t.Errorf("%d calls after cancel", n)
	}
}

func TestContextCanceledBeforeTheCall(t *testing.T) {
	f := newFake(t)
	c, _ := f.client()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Version(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if len(f.requests()) != 0 {
		t.Fatal("request sent with a canceled context")
	}
}

func TestPerAttemptTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	f := newFake(t).on("GET", "/servers/getVersion", func(w http.ResponseWriter, r *http.Request) {
		select { // hang until the client gives up on this attempt
		case <-r.Context().Done():
		case <-release:
		}
	}, replay(t, "real/api/01_servers_getVersion.json"))
	c, s := f.client(func(o *Options) { o.Timeout = 200 * time.Millisecond })
	v, err := c.Version(context.Background())
	if err != nil || v.Version != "2.5.1" {
		t.Fatalf("got %+v, %v", v, err)
	}
	if f.count("GET", "/servers/getVersion") != 2 || len(s.all()) != 1 {
		t.Errorf("%d calls, %d waits; want 2 and 1", f.count("GET", "/servers/getVersion"), len(s.all()))
	}
}

func TestClientSideRateLimit(t *testing.T) {
	f := newFake(t).on("GET", "/servers/getVersion", replay(t, "real/api/01_servers_getVersion.json"))
	c, _ := f.client(func(o *Options) { o.QPS = 0.001; o.Burst = 1 })
	if _, err := c.Version(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The bucket is empty for the next ~1000 s: a call that cannot wait that long fails
	// without reaching MISP.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Version(ctx)
	if err == nil || !strings.Contains(err.Error(), "client-side rate limit") {
		t.Fatalf("err = %v", err)
	}
	if n := f.count("GET", "/servers/getVersion"); n != 1 {
		t.Errorf("%d calls reached MISP, want 1", n)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	// Without Accept: application/json MISP redirects browsers to the login page.
	f := newFake(t).on("GET", "/servers/getVersion", answer(302, "", "Location", "/users/login"))
	c, _ := f.client()
	_, err := c.Version(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Kind != ErrUnexpectedResponse || ae.Status != 302 || !strings.Contains(ae.Message, "/users/login") {
		t.Fatalf("err = %#v", err)
	}
	if f.count("GET", "/users/login") != 0 {
		t.Fatal("redirect followed")
	}
}

func TestOversizedAnswer(t *testing.T) {
	f := newFake(t).on("GET", "/warninglists/index", replay(t, "real/api/20_warninglists_index.json"))
	c, _ := f.client()
	c.maxBody = 1024
	_, err := c.ListWarninglists(context.Background())
	if !errors.Is(err, ErrUnexpectedResponse) || !strings.Contains(err.Error(), "larger than 1024 bytes") {
		t.Fatalf("err = %v", err)
	}
	if n := f.count("GET", "/warninglists/index"); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

func TestTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(replay(t, "real/api/01_servers_getVersion.json"))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	t.Run("unknown CA fails without retries", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		c, err := New(Options{URL: srv.URL, APIKey: testKey, Metrics: NewMetrics(reg), RetryBaseDelay: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Version(context.Background())
		if err == nil || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "1 attempt(s)") {
			t.Fatalf("err = %v", err)
		}
		if n := testutil.ToFloat64(c.metrics.requests.WithLabelValues("", "/servers/getVersion", "error")); n != 1 {
			t.Errorf("%v attempts counted, want 1", n)
		}
	})
	t.Run("CA bundle", func(t *testing.T) {
		c, err := New(Options{URL: srv.URL, APIKey: testKey, CABundle: caPEM})
		if err != nil {
			t.Fatal(err)
		}
		if v, err := c.Version(context.Background()); err != nil || v.Version != "2.5.1" {
			t.Fatalf("got %+v, %v", v, err)
		}
	})
	t.Run("InsecureSkipVerify works and is logged once, at New", func(t *testing.T) {
		logs := &logSink{}
		c, err := New(Options{URL: srv.URL, APIKey: testKey, InsecureSkipVerify: true, Logger: logs.logger()})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if _, err := c.Version(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if n := logs.count("verification of MISP is DISABLED"); n != 1 {
			t.Errorf("insecure warning logged %d times: %q", n, logs.all())
		}
	})
	t.Run("plain http is logged", func(t *testing.T) {
		logs := &logSink{}
		if _, err := New(Options{URL: "http://misp.example", APIKey: testKey, Logger: logs.logger()}); err != nil {
			t.Fatal(err)
		}
		if logs.count("plain http") != 1 {
			t.Errorf("logs %q", logs.all())
		}
	})
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	if again := NewMetrics(reg); again.requests != m.requests {
		t.Fatal("a second NewMetrics on the same registry does not share the collectors")
	}
	f := newFake(t).
		on("POST", "/events/publish/"+e1UUID, answer(429, `{}`, "Retry-After", "1"), replay(t, "real/sync/api/63_A_admin_publish_e1.json")).
		on("GET", "/warninglists/view/139", replay(t, "real/warninglists_extra/api/25_warninglists_view_deleted.json"))
	c, _ := f.client(func(o *Options) { o.Metrics, o.Instance = m, "sec/misp-a"; o.RetryMaxDelay = 5 * time.Second })
	if _, err := c.Publish(context.Background(), e1UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ViewWarninglist(context.Background(), "139"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	checks := []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.requests.WithLabelValues("sec/misp-a", "/events/publish/{id}", "429"), 1},
		{m.requests.WithLabelValues("sec/misp-a", "/events/publish/{id}", "200"), 1},
		{m.retries.WithLabelValues("sec/misp-a", "/events/publish/{id}"), 1},
		{m.requests.WithLabelValues("sec/misp-a", "/warninglists/view/{id}", "404"), 1},
	}
	for i, ch := range checks {
		if got := testutil.ToFloat64(ch.c); got != ch.want {
			t.Errorf("check %d: %v, want %v", i, got, ch.want)
		}
	}
	if n := testutil.CollectAndCount(m.latency); n != 2 {
		t.Errorf("%d latency series, want 2 (one per endpoint)", n)
	}
	// Label values are route templates, never paths carrying ids.
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		for _, metric := range fam.GetMetric() {
			for _, l := range metric.GetLabel() {
				if strings.Contains(l.GetValue(), e1UUID) || strings.Contains(l.GetValue(), "139") {
					t.Errorf("%s has an id in label %s=%q", fam.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	t.Run("two instances sharing the metrics are told apart, and a deleted one is forgotten", func(t *testing.T) {
		other := newFake(t).on("GET", "/servers/getVersion", replay(t, "real/api/01_servers_getVersion.json"))
		b, _ := other.client(func(o *Options) { o.Metrics, o.Instance = m, "sec/misp-b" })
		if _, err := b.Version(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := testutil.ToFloat64(m.requests.WithLabelValues("sec/misp-b", "/servers/getVersion", "200")); got != 1 {
			t.Fatalf("misp-b requests = %v, want 1", got)
		}
		if n := testutil.CollectAndCount(m.requests); n != 4 {
			t.Fatalf("%d request series, want 4 (three of misp-a, one of misp-b)", n)
		}
		if n := testutil.CollectAndCount(m.latency); n != 3 {
			t.Fatalf("%d latency series, want 3 (two of misp-a, one of misp-b)", n)
		}
		m.Forget("sec/misp-b")
		if n := testutil.CollectAndCount(m.requests); n != 3 {
			t.Errorf("%d request series after Forget(misp-b), want misp-a's 3", n)
		}
		if n := testutil.CollectAndCount(m.latency); n != 2 {
			t.Errorf("%d latency series after Forget(misp-b), want misp-a's 2", n)
		}
	})
	t.Run("nil metrics record nothing and do not crash", func(t *testing.T) {
		var nilMetrics *Metrics
		nilMetrics.observe("i", "/x", 200, time.Second)
		nilMetrics.retried("i", "/x")
		nilMetrics.Forget("i")
		f := newFake(t).on("GET", "/servers/getVersion", replay(t, "real/api/01_servers_getVersion.json"))
		c, _ := f.client()
		if _, err := c.Version(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("NewMetrics(nil) works unregistered", func(t *testing.T) {
		m := NewMetrics(nil)
		m.observe("i", "/x", 200, time.Second)
		if testutil.ToFloat64(m.requests.WithLabelValues("i", "/x", "200")) != 1 {
			t.Fatal("not counted")
		}
	})
}

func TestErrorMessagesAreUnescapedAndComplete(t *testing.T) {
	// MISP runs h() over error strings (misp-api.md §0): not captured with quotes, so built
	// from the documented escaping.
	body := `{"saved":false,"name":"Could not attachTagToObject Tag","message":"Tag &quot;tlp:red&quot; isn&#039;t allowed","url":"/tags/attachTagToObject","errors":{"tag":["&quot;x&quot; &amp; y"]}}`
	f := newFake(t).on("POST", "/tags/attachTagToObject", answer(403, body))
	c, _ := f.client()
	err := c.AttachTags(context.Background(), e1UUID, []string{"tlp:red"}, true)
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %#v", err)
	}
	if ae.Message != `Tag "tlp:red" isn't allowed` {
		t.Errorf("message %q", ae.Message)
	}
	if got := ae.Errors.(map[string]any)["tag"].([]any)[0]; got != `"x" & y` {
		t.Errorf("errors %q", got)
	}
	want := `misp: attach local tags ["tlp:red"] to event ` + e1UUID + `: POST /tags/attachTagToObject: HTTP 403 (validation failed): Tag "tlp:red" isn't allowed (errors: {"tag":["\"x\" \u0026 y"]})`
	if err.Error() != want {
		t.Errorf("Error()\n got %s\nwant %s", err.Error(), want)
	}
}

func TestClassifyCapturedErrors(t *testing.T) {
	tests := []struct {
		file string
		want error
	}{
		{"real/api/02_servers_getVersion_badkey.json", ErrUnauthorized},
		{"real/api/03_servers_getVersion_nokey.json", ErrUnauthorized},
		{"real/api/25_warninglists_add_custom_invalid.json", ErrValidation},
		{"real/api/41_tags_attachTagToObject_badtag_id.json", ErrValidation},
		{"real/api/61_events_view_404.json", ErrNotFound},
		{"real/api/62_events_publish_404.json", ErrNotFound},
		{"real/api/63_events_add_invalid.json", ErrValidation},
		{"real/warninglists_extra/api/01_warninglists_add_custom_invalid_category.json", ErrValidation},
		{"real/warninglists_extra/api/25_warninglists_view_deleted.json", ErrNotFound},
		{"real/background_jobs/api/07_jobs_index.json", ErrServer},
		{"real/background_jobs/api/08_servers_serverSettings_workers.json", ErrServer},
		{"real/sync/api/71_A_pub_remove_global_workflow_incomplete_e2.json", ErrForbidden},
		{"real/sync/api/74_A_pub_tag_e2_global_workflow_complete.json", ErrForbidden},
		{"real/sync/api/76_A_pub_publish_e2.json", ErrNotAllowed},
		{"real/sync/api/77_A_pub_publish_e2_by_uuid.json", ErrNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := loadCapture(t, tt.file)
			p := decodeError(c.Response.Status, c.body())
			if got := classify(c.Response.Status, p); got != tt.want {
				t.Errorf("classify = %v, want %v (message %q)", got, tt.want, p.Message)
			}
			if p.Message == "" || !p.IsJSON {
				t.Errorf("message %q, JSON %v", p.Message, p.IsJSON)
			}
		})
	}
	// Every captured 4xx/5xx answer gets the kind its status calls for.
	for _, rel := range captureFiles(t, "", "/") {
		c := loadCapture(t, rel)
		status := c.Response.Status
		if status < 400 {
			continue
		}
		got := classify(status, decodeError(status, c.body()))
		ok := false
		switch {
		case status == 404:
			ok = got == ErrNotFound
		case status == 405:
			ok = got == ErrNotAllowed
		case status == 400:
			ok = got == ErrValidation
		case status == 403:
			ok = got == ErrUnauthorized || got == ErrForbidden || got == ErrValidation
		case status >= 500:
			ok = got == ErrServer
		}
		if !ok {
			t.Errorf("%s: HTTP %d classified as %v", rel, status, got)
		}
	}
}
