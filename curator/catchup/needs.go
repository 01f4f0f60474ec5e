package catchup

import (
	"strings"

	"github.com/misptrust/misp-trust-operator/controllers/trust"
	"github.com/misptrust/misp-trust-operator/curator/index"
	"github.com/misptrust/misp-trust-operator/misp"
)

// needsCuration reports whether an event, as the index search returned it, is not yet in
// the state its policy asks for — the same state the engine's plan reaches (engine.Plan):
// every policy tag present (attaching a name already attached with the other locality
// changes nothing in MISP, misp.Client.AttachTags, so presence is by name), no local
// admiralty-scale tag the policy does not give, and for publishing policies no
// workflow:state="incomplete" and the event published. Only events that fail this check
// are handed to the engine, so a pass over already-curated events costs no engine work
// and does not inflate the alreadyCurated counters.
func needsCuration(m misp.EventMeta, p index.Policy) bool {
	have := make(map[string]bool, len(m.Tags))
	for _, t := range m.Tags {
		have[t.Name] = true
	}
	for _, t := range p.Tags {
		if !have[t] {
			return true
		}
	}
	want := make(map[string]bool, len(p.Tags))
	for _, t := range p.Tags {
		want[t] = true
	}
	for _, t := range m.Tags {
		if t.Local && strings.HasPrefix(t.Name, "admiralty-scale:") && !want[t.Name] {
			return true
		}
	}
	if p.Publish {
		if have[trust.TagWorkflowIncomplete] || !m.Published {
			return true
		}
	}
	return false
}
