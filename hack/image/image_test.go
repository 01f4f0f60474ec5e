package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sigs.k8s.io/yaml"
)

const repoRoot = "../.."

// operatorBinary is $IMAGE_BINARY (make image builds it) or a static build made here.
func operatorBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("IMAGE_BINARY"); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "misp-trust-operator")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=image-test", "-o", out, ".")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the operator: %v\n%s", err, b)
	}
	return out
}

// built is one image written by the command's code path and read back from disk.
type built struct {
	img     v1.Image
	cfg     *v1.ConfigFile
	files   map[string]*tar.Header
	content map[string][]byte
	tarball string
	ref     string
}

func buildImage(t *testing.T, binary, created string) built {
	t.Helper()
	dir := t.TempDir()
	oci, tb := filepath.Join(dir, "oci"), filepath.Join(dir, "image.tar")
	ref := "ghcr.io/misptrust/misp-trust-operator:test"
	if err := run(binary, CAPath, "linux", "amd64", "1.2.3", "0123abcd", created, oci, tb, ref); err != nil {
		t.Fatal(err)
	}
	b := readLayout(t, oci, "test")
	b.tarball, b.ref = tb, ref
	return b
}

// readLayout reads the one image of an OCI layout, named tag.
func readLayout(t *testing.T, oci, tag string) built {
	t.Helper()
	p, err := layout.FromPath(oci)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != tag {
		t.Fatalf("layout index %+v: want one image named %s", im.Manifests, tag)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	b := built{img: img, cfg: cfg, files: map[string]*tar.Header{}, content: map[string][]byte{}}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b.files[h.Name] = h
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			b.content[h.Name] = data
		}
	}
	return b
}

func TestImage(t *testing.T) {
	binary := operatorBinary(t)
	img := buildImage(t, binary, "1767225600") // 2026-01-01T00:00:00Z

	t.Run("config: nonroot user, the binary as entrypoint, labels, no volume", func(t *testing.T) {
		c := img.cfg.Config
		if c.User != "65532:65532" || len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/misp-trust-operator" || len(c.Cmd) != 0 {
			t.Errorf("user %q entrypoint %q cmd %q", c.User, c.Entrypoint, c.Cmd)
		}
		if len(c.Volumes) != 0 || len(c.ExposedPorts) != 0 {
			t.Errorf("volumes %v ports %v: the image needs no writable volume", c.Volumes, c.ExposedPorts)
		}
		want := map[string]string{
			"org.opencontainers.image.title":       "misp-trust-operator",
			"org.opencontainers.image.source":      "https://github.com/misptrust/misp-trust-operator",
			"org.opencontainers.image.description": "Curates MISP events by the trust placed in their creator organisation",
			"org.opencontainers.image.version":     "1.2.3",
			"org.opencontainers.image.revision":    "0123abcd",
			"org.opencontainers.image.created":     "2026-01-01T00:00:00Z",
		}
		for k, v := range want {
			if c.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
			}
		}
		if !contains(c.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") {
			t.Errorf("env %q", c.Env)
		}
		if img.cfg.OS != "linux" || img.cfg.Architecture != "amd64" || !img.cfg.Created.Time.Equal(time.Unix(1767225600, 0)) {
			t.Errorf("platform %s/%s created %v", img.cfg.OS, img.cfg.Architecture, img.cfg.Created)
		}
		mt, _ := img.img.MediaType()
		if mt != types.OCIManifestSchema1 {
			t.Errorf("manifest media type %s, want OCI", mt)
		}
	})

	t.Run("the layer holds the binary and a nonroot base, and no shell", func(t *testing.T) {
		var names []string
		for n := range img.files {
			names = append(names, n)
		}
		sort.Strings(names)
		want := []string{"etc/", "etc/group", "etc/nsswitch.conf", "etc/passwd", "etc/ssl/", "etc/ssl/certs/",
			"etc/ssl/certs/ca-certificates.crt", "home/", "home/nonroot/", "misp-trust-operator", "tmp/"}
		if strings.Join(names, " ") != strings.Join(want, " ") {
			t.Fatalf("layer files %q\nwant %q (no shell, no package manager)", names, want)
		}
		if !strings.Contains(string(img.content["etc/passwd"]), "nonroot:x:65532:65532:") {
			t.Errorf("/etc/passwd has no nonroot 65532:\n%s", img.content["etc/passwd"])
		}
		if h := img.files["home/nonroot/"]; h.Uid != 65532 || h.Gid != 65532 {
			t.Errorf("/home/nonroot owned by %d:%d", h.Uid, h.Gid)
		}
		if h := img.files["misp-trust-operator"]; h.Uid != 0 || h.Mode&0o022 != 0 || h.Mode&0o111 == 0 {
			t.Errorf("binary owner %d mode %o: want root-owned, executable, not writable by the user", h.Uid, h.Mode)
		}
		orig, err := os.ReadFile(binary)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(orig, img.content["misp-trust-operator"]) {
			t.Error("the binary in the layer is not the one given")
		}
		ca, _ := os.ReadFile(CAPath)
		if !bytes.Equal(ca, img.content["etc/ssl/certs/ca-certificates.crt"]) || !bytes.Contains(ca, []byte("BEGIN CERTIFICATE")) {
			t.Error("the CA bundle is not Debian's")
		}
	})

	t.Run("the binary from the layer is static and runs --help as 65532 without writing", func(t *testing.T) {
		runsHelp(t, img.content["misp-trust-operator"])
	})

	t.Run("reproducible: the same input gives the same digest, another time another one", func(t *testing.T) {
		d1, _ := img.img.Digest()
		d2, _ := buildImage(t, binary, "1767225600").img.Digest()
		d3, _ := buildImage(t, binary, "1767225601").img.Digest()
		if d1 != d2 || d1 == d3 {
			t.Errorf("digests %s, %s (same input), %s (other time)", d1, d2, d3)
		}
	})

	t.Run("the docker tarball holds the same image", func(t *testing.T) {
		tag, err := name.NewTag(img.ref)
		if err != nil {
			t.Fatal(err)
		}
		ti, err := tarball.ImageFromPath(img.tarball, &tag)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := ti.ConfigName()
		b, _ := img.img.ConfigName()
		if a != b {
			t.Errorf("tarball config %s, layout config %s", a, b)
		}
	})
}

// runsHelp runs the binary of an image the way the image does (as 65532:65532 when the
// test runs as root), in a directory it cannot write to: it is static (no dynamic
// loader), prints the commands and each command's flags, and writes nothing.
func runsHelp(t *testing.T, binary []byte) {
	t.Helper()
	dir, err := os.MkdirTemp("", "image-rootfs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // readable, not writable, by 65532
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "misp-trust-operator")
	if err := os.WriteFile(bin, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary has a dynamic loader: it needs a libc the image does not have")
		}
	}
	f.Close()
	for _, args := range [][]string{{"--help"}, {"controller", "--help"}, {"curator", "--help"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = []string{"HOME=/home/nonroot", "TMPDIR=/nonexistent", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
		if os.Geteuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
		} else {
			t.Log("not root: running as the current user, not 65532")
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %q: %v\n%s", bin, args, err, out)
		}
		if args[0] == "--help" && (!strings.Contains(string(out), "controller") || !strings.Contains(string(out), "curator")) {
			t.Errorf("--help does not list the commands:\n%s", out)
		}
		if len(args) == 2 && !strings.Contains(string(out), "-metrics-bind-address") {
			t.Errorf("%q does not list its flags:\n%s", args, out)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the binary wrote %d entries next to itself", len(entries)-1)
	}
}

// TestReleaseLayout checks the layout `make image` wrote (IMAGE_LAYOUT, its tag
// IMAGE_TAG, the version label IMAGE_VERSION).
func TestReleaseLayout(t *testing.T) {
	oci, tag, version := os.Getenv("IMAGE_LAYOUT"), os.Getenv("IMAGE_TAG"), os.Getenv("IMAGE_VERSION")
	if oci == "" {
		t.Skip("IMAGE_LAYOUT is not set: `make image` builds bin/image/oci and sets it")
	}
	img := readLayout(t, oci, tag)
	c := img.cfg.Config
	if c.User != User || len(c.Entrypoint) != 1 || c.Entrypoint[0] != Entrypoint || c.Labels["org.opencontainers.image.version"] != version {
		t.Errorf("user %q entrypoint %q labels %v", c.User, c.Entrypoint, c.Labels)
	}
	if _, ok := img.files["bin/sh"]; ok || len(img.files) != 11 {
		t.Errorf("%d files in the layer, want the 11 of the base and binary", len(img.files))
	}
	runsHelp(t, img.content["misp-trust-operator"])
	d, _ := img.img.Digest()
	t.Logf("%s: %s, user %s, entrypoint %q", oci, d, c.User, c.Entrypoint)
}

// TestDockerfileIsEquivalent: users with Docker build the same image from the Dockerfile
// (distroless/static:nonroot ships the same passwd, CA bundle, /home/nonroot and /tmp).
func TestDockerfileIsEquivalent(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := strings.ReplaceAll(string(raw), "\\\n", " ")
	for _, want := range []string{
		"FROM gcr.io/distroless/static:nonroot",
		"CGO_ENABLED=0", "-trimpath",
		"COPY --from=build /out/misp-trust-operator " + Entrypoint,
		"USER " + User,
		`ENTRYPOINT ["` + Entrypoint + `"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	label := regexp.MustCompile(`(org\.opencontainers\.image\.\w+)="([^"]*)"`)
	got := map[string]string{}
	for _, m := range label.FindAllStringSubmatch(df, -1) {
		got[m[1]] = m[2]
	}
	for k, v := range Labels {
		if got[k] != v {
			t.Errorf("Dockerfile label %s = %q, image %q", k, got[k], v)
		}
	}
	// The chart runs it with a read-only root file system: nothing may need to write.
	var values struct {
		SecurityContext struct {
			ReadOnlyRootFilesystem bool `json:"readOnlyRootFilesystem"`
			RunAsNonRoot           bool `json:"runAsNonRoot"`
		} `json:"securityContext"`
	}
	vb, err := os.ReadFile(filepath.Join(repoRoot, "charts", "misp-trust-operator", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(vb, &values); err != nil {
		t.Fatal(err)
	}
	if !values.SecurityContext.ReadOnlyRootFilesystem || !values.SecurityContext.RunAsNonRoot {
		t.Errorf("chart securityContext %+v: want readOnlyRootFilesystem and runAsNonRoot", values.SecurityContext)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
