package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	var (
		binary   = flag.String("binary", "", "the static operator binary (CGO_ENABLED=0)")
		ca       = flag.String("ca-bundle", CAPath, "CA bundle to ship (Debian's ca-certificates)")
		goos     = flag.String("os", "linux", "image OS")
		arch     = flag.String("arch", "amd64", "image architecture (the binary's GOARCH)")
		version  = flag.String("version", "dev", "org.opencontainers.image.version")
		revision = flag.String("revision", "", "org.opencontainers.image.revision (commit)")
		created  = flag.String("created", "", "creation time, Unix seconds (default $SOURCE_DATE_EPOCH, else 0: reproducible)")
		ociDir   = flag.String("oci", "", "write an OCI image layout to this directory (replaced)")
		tarPath  = flag.String("tarball", "", "write a `docker load` tarball to this file")
		tag      = flag.String("tag", "ghcr.io/misptrust/misp-trust-operator:dev", "image reference recorded in the tarball and the layout")
	)
	flag.Parse()
	if err := run(*binary, *ca, *goos, *arch, *version, *revision, *created, *ociDir, *tarPath, *tag); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(binary, ca, goos, arch, version, revision, created, ociDir, tarPath, tag string) error {
	if binary == "" || (ociDir == "" && tarPath == "") {
		return fmt.Errorf("need -binary and -oci or -tarball")
	}
	if created == "" {
		created = os.Getenv("SOURCE_DATE_EPOCH")
	}
	var at time.Time
	if created != "" {
		sec, err := strconv.ParseInt(created, 10, 64)
		if err != nil {
			return fmt.Errorf("-created %q: %w", created, err)
		}
		at = time.Unix(sec, 0)
	} else {
		at = time.Unix(0, 0)
	}
	s := Spec{OS: goos, Arch: arch, Version: version, Revision: revision, Created: at}
	var err error
	if s.Binary, err = readFile(binary); err != nil {
		return err
	}
	if s.CABundle, err = readFile(ca); err != nil {
		return err
	}
	img, err := Build(s)
	if err != nil {
		return err
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("-tag: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	if ociDir != "" {
		if err := os.RemoveAll(ociDir); err != nil {
			return err
		}
		p, err := layout.Write(ociDir, empty.Index)
		if err != nil {
			return fmt.Errorf("OCI layout %s: %w", ociDir, err)
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref.TagStr()})); err != nil {
			return fmt.Errorf("OCI layout %s: %w", ociDir, err)
		}
		fmt.Printf("OCI layout %s: %s %s\n", ociDir, ref, digest)
	}
	if tarPath != "" {
		if err := tarball.WriteToFile(tarPath, ref, img); err != nil {
			return fmt.Errorf("tarball %s: %w", tarPath, err)
		}
		fmt.Printf("tarball %s: %s %s\n", tarPath, ref, digest)
	}
	return nil
}
