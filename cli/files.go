package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// fileObject is one object read from a policy file.
type fileObject struct {
	obj    *unstructured.Unstructured
	source string // file name (and document number) for messages
}

// readObjects reads every object of the files and directories (their *.yaml, *.yml and
// *.json files, not recursively, as `kubectl apply -f` does) and of "-" (standard
// input, e.g. `kubectl kustomize dir | ... plan -f -`). A kustomization.yaml is not an
// object: it is reported so the user pipes `kubectl kustomize` output instead.
func readObjects(paths []string, stdin io.Reader) ([]fileObject, []string, error) {
	if len(paths) == 0 {
		return nil, nil, errors.New("-f is required: policy files, a directory of them, or - for standard input")
	}
	var out []fileObject
	var notes []string
	for _, p := range paths {
		if p == "-" {
			objs, err := decodeObjects(stdin, "<stdin>")
			if err != nil {
				return nil, nil, err
			}
			out = append(out, objs...)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, nil, err
		}
		files := []string{p}
		if info.IsDir() {
			files = nil
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, nil, err
			}
			for _, e := range entries {
				ext := strings.ToLower(filepath.Ext(e.Name()))
				if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
					continue
				}
				if base := strings.TrimSuffix(e.Name(), ext); base == "kustomization" || base == "Kustomization" {
					notes = append(notes, fmt.Sprintf("%s is read as plain files, not rendered: for kustomize overlays pipe `kubectl kustomize %s` into -f -", filepath.Join(p, e.Name()), p))
					continue
				}
				files = append(files, filepath.Join(p, e.Name()))
			}
			sort.Strings(files)
		}
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				return nil, nil, err
			}
			objs, err := decodeObjects(fh, f)
			fh.Close()
			if err != nil {
				return nil, nil, err
			}
			out = append(out, objs...)
		}
	}
	return out, notes, nil
}

// decodeObjects reads a multi-document YAML or JSON stream; a v1 List is unpacked.
func decodeObjects(r io.Reader, source string) ([]fileObject, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []fileObject
	for i := 1; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		src := fmt.Sprintf("%s#%d", source, i)
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("%s: not a Kubernetes object (no apiVersion or kind)", src)
		}
		if u.IsList() {
			err := u.EachListItem(func(o runtime.Object) error {
				item, ok := o.(*unstructured.Unstructured)
				if !ok {
					return fmt.Errorf("%s: a List item is not an object", src)
				}
				out = append(out, fileObject{obj: item, source: src})
				return nil
			})
			if err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, fileObject{obj: u, source: src})
	}
}
