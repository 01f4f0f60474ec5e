// Command image builds the operator's release image without a container engine, the way
// ko and distroless do: the static binary (CGO_ENABLED=0) on a base made from nothing but
// the files a static Go program needs — /etc/passwd and /etc/group with the distroless
// "nonroot" user (65532), /etc/nsswitch.conf, the CA bundle of Debian's ca-certificates
// package, /home/nonroot and /tmp — run as 65532:65532 with the binary as entrypoint and the
// OCI labels the Dockerfile sets. No shell, no package manager, nothing else.
//
// It writes an OCI image layout (a directory registries and tools such as crane, skopeo
// and `docker load` via the tarball read) and a `docker load`-able tarball. The output is
// reproducible: every file time and the image's creation time come from -created (CI uses
// the commit time), so the same binary gives the same digest.
//
//	make image    # bin/misp-trust-operator-linux-amd64, bin/image/oci (layout), bin/image/image.tar
//
// The Dockerfile builds the equivalent image for users with Docker (distroless/static:
// nonroot); image_test.go checks both declare the same user, entrypoint and labels.
//
// It is its own Go module, like hack/gitops-check: go-containerregistry stays out of the
// operator's module.
package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the image is, shared with the Dockerfile (image_test.go keeps them equal).
const (
	Entrypoint = "/misp-trust-operator"
	User       = "65532:65532"
	HomeDir    = "/home/nonroot"
	CAPath     = "/etc/ssl/certs/ca-certificates.crt"
)

// Labels the Dockerfile sets too; Build adds version, revision and created.
var Labels = map[string]string{
	"org.opencontainers.image.title":       "misp-trust-operator",
	"org.opencontainers.image.description": "Curates MISP events by the trust placed in their creator organisation",
	"org.opencontainers.image.source":      "https://github.com/misptrust/misp-trust-operator",
}

// Spec is what goes into one image.
type Spec struct {
	Binary   []byte // the static operator binary
	CABundle []byte // PEM bundle (Debian's ca-certificates)
	OS, Arch string
	Version  string
	Revision string    // VCS commit, optional
	Created  time.Time // image creation time and every file's time
}

// distroless' static:nonroot users and groups (root, nobody, nonroot).
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
	// Go's resolver reads it to order /etc/hosts before DNS, as glibc does.
	nsswitch = "hosts: files dns\n"
)

// file is one entry of the image's only layer.
type file struct {
	name     string
	mode     int64
	uid, gid int
	dir      bool
	data     []byte
}

// rootfs lists the layer's entries, parents before children.
func rootfs(s Spec) []file {
	return []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte(nsswitch)},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: s.CABundle},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, uid: 65532, gid: 65532, dir: true},
		{name: "misp-trust-operator", mode: 0o755, data: s.Binary},
		{name: "tmp/", mode: 0o1777, dir: true},
	}
}

// layerTar is the layer's uncompressed tar, every entry at the same time.
func layerTar(s Spec) ([]byte, error) {
	files := rootfs(s)
	sort.SliceStable(files, func(i, j int) bool { return files[i].name < files[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: s.Created, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", f.name, err)
		}
		if !f.dir {
			if _, err := tw.Write(f.data); err != nil {
				return nil, fmt.Errorf("layer entry %s: %w", f.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Build assembles the image (OCI media types).
func Build(s Spec) (v1.Image, error) {
	switch {
	case len(s.Binary) == 0:
		return nil, fmt.Errorf("no binary")
	case len(s.CABundle) == 0:
		return nil, fmt.Errorf("no CA bundle")
	case s.OS == "" || s.Arch == "":
		return nil, fmt.Errorf("no platform")
	}
	s.Created = s.Created.UTC().Truncate(time.Second)
	raw, err := layerTar(s)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: s.Created}, CreatedBy: "hack/image: static binary on a nonroot base", Comment: "misp-trust-operator " + s.Version}})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = s.OS, s.Arch
	cf.Created = v1.Time{Time: s.Created}
	labels := map[string]string{
		"org.opencontainers.image.version": s.Version,
		"org.opencontainers.image.created": s.Created.Format(time.RFC3339),
	}
	if s.Revision != "" {
		labels["org.opencontainers.image.revision"] = s.Revision
	}
	for k, v := range Labels {
		labels[k] = v
	}
	cf.Config = v1.Config{
		User:       User,
		Entrypoint: []string{Entrypoint},
		WorkingDir: HomeDir,
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=" + CAPath},
		Labels:     labels,
	}
	return mutate.ConfigFile(img, cf)
}

func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}
