package kubernetes

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// typed is the k8s.io/api type of each kind the manifests may hold, by
// apiVersion and kind: anything else fails the test.
func typed(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "v1 Secret":
		return &corev1.Secret{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	}
	return nil, false
}

// decodeStrict decodes every document of a manifest file into its
// k8s.io/api type, as the API server would with strict field validation: an
// unknown or misspelt field, a duplicate field or a value of the wrong type
// is an error.
func decodeStrict(file string, data []byte) error {
	for i, doc := range splitDocuments(data) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return fmt.Errorf("%s: document %d: %w", file, i+1, err)
		}
		if head.Kind == "" && len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, ok := typed(head.APIVersion, head.Kind)
		if !ok {
			return fmt.Errorf("%s: document %d: no k8s.io/api type for apiVersion %q kind %q", file, i+1, head.APIVersion, head.Kind)
		}
		// As the API server decodes with fieldValidation=Strict: field names
		// match case-sensitively (encoding/json alone would take
		// "stringdata" for stringData), and unknown or duplicate fields are
		// errors.
		data, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return fmt.Errorf("%s: document %d (%s): %w", file, i+1, head.Kind, err)
		}
		strict, err := kjson.UnmarshalStrict(data, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err == nil {
			err = errors.Join(strict...)
		}
		if err != nil {
			return fmt.Errorf("%s: document %d (%s): %w", file, i+1, head.Kind, err)
		}
	}
	return nil
}

// splitDocuments splits a YAML stream at its "---" lines, dropping
// documents that hold only comments.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, doc := range bytes.Split(append([]byte("\n"), data...), []byte("\n---")) {
		var content bool
		for _, line := range strings.Split(string(doc), "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				content = true
				break
			}
		}
		if content {
			docs = append(docs, doc)
		}
	}
	return docs
}

// TestManifestsDecodeIntoKubernetesTypes decodes every manifest (the
// kustomization aside) strictly into the k8s.io/api types of the version
// pinned in go.mod.
func TestManifestsDecodeIntoKubernetesTypes(t *testing.T) {
	for _, o := range readObjects(t) {
		if _, ok := typed(o.APIVersion, o.Kind); !ok {
			t.Errorf("%v: no k8s.io/api type for apiVersion %q kind %q", o, o.APIVersion, o.Kind)
		}
	}
	files := manifestFiles(t)
	if len(files) < 4 {
		t.Fatalf("found %d manifests, want deployment, service, pdb and the secret example: %v", len(files), files)
	}
	for _, file := range files {
		data, err := os.ReadFile(file) //nolint:gosec // G304: the manifests of this directory
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeStrict(file, data); err != nil {
			t.Error(err)
		}
	}
}

// TestStrictDecodeCatchesBreakages breaks the manifests on purpose, one way
// at a time, and expects the strict decoding to refuse each.
func TestStrictDecodeCatchesBreakages(t *testing.T) {
	tests := []struct {
		name, file, old, new string
		wantErr              string
	}{
		{"misspelt readinessProbe", "deployment.yaml", "readinessProbe:", "readinesProbe:", `unknown field "spec.template.spec.containers[0].readinesProbe"`},
		{"misspelt containerPort", "deployment.yaml", "containerPort:", "containerPrt:", "containerPrt"},
		{"field at the wrong level", "deployment.yaml", "\n      containers:", "\n      container:", `unknown field "spec.template.spec.container"`},
		{"replicas as text", "deployment.yaml", "replicas: ", "replicas: many #", "replicas"},
		{"misspelt targetPort", "service.yaml", "targetPort:", "targetPrt:", "targetPrt"},
		{"misspelt maxUnavailable", "pdb.yaml", "maxUnavailable:", "maxUnavailble:", "maxUnavailble"},
		{"misspelt stringData", "secret.example.yaml", "stringData:", "stringdata:", "stringdata"},
		{"unknown kind", "service.yaml", "kind: Service", "kind: Servce", "no k8s.io/api type"},
		{"old apiVersion", "pdb.yaml", "apiVersion: policy/v1", "apiVersion: policy/v1beta1", "no k8s.io/api type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if err := decodeStrict(tt.file, data); err != nil {
				t.Fatalf("the manifest as it is: %v", err)
			}
			if !bytes.Contains(data, []byte(tt.old)) {
				t.Fatalf("%s has no %q to break", tt.file, tt.old)
			}
			broken := bytes.Replace(data, []byte(tt.old), []byte(tt.new), 1)
			err = decodeStrict(tt.file, broken)
			if err == nil {
				t.Fatalf("replacing %q with %q: decoded without error", tt.old, tt.new)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("replacing %q with %q: error %q, want one containing %q", tt.old, tt.new, err, tt.wantErr)
			}
		})
	}
}
