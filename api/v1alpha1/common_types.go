package v1alpha1

// SecretKeyReference points at one key of a Secret in the namespace of the
// object that holds the reference.
type SecretKeyReference struct {
	// Name of the Secret, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key inside the Secret's data. When omitted the field documents its default.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// SecretReference points at a whole Secret in the namespace of the object that
// holds the reference.
type SecretReference struct {
	// Name of the Secret, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// Condition types and reasons shared by both kinds. Reasons are CamelCase words
// a person can act on; messages are sentences.
const (
	// ConditionReady summarises every other condition of the object.
	ConditionReady = "Ready"
)
