// Package trust is the operator's API resolved in code, shared by the controller
// (which writes warninglists and policy status) and the curator (which tags
// events): the defaults of an OrgTrustPolicy, its effective organisations
// (inline plus organisationsFrom ConfigMap keys), the tags it attaches, the
// precedence rule that decides which policy wins an organisation listed in
// several, and how a MISPInstance's spec becomes MISP client options.
//
// Keeping this in one package is what guarantees that the status a person reads
// ("org X is won by policy high") is the rule the curator applies.
package trust
