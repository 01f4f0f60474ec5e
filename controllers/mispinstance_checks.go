package controllers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/misptrust/misp-trust-operator/api/v1alpha1"
	"github.com/misptrust/misp-trust-operator/misp"
	"github.com/misptrust/misp-trust-operator/trust"
)

// instanceAPI is what the MISPInstance reconciler asks MISP (all reads).
type instanceAPI interface {
	Version(ctx context.Context) (misp.ServerVersion, error)
	WhoAmI(ctx context.Context) (misp.Me, error)
	HostOrgID(ctx context.Context) (string, error)
}

// Condition reasons of MISPInstance (besides the credential reasons in
// clients.go). Each names what a person has to fix.
const (
	ReasonReachable           = "Reachable"
	ReasonUnreachable         = "Unreachable"
	ReasonServerError         = "ServerError"
	ReasonTLSError            = "TLSError"
	ReasonUnexpectedResponse  = "UnexpectedResponse"
	ReasonVersionTooOld       = "VersionTooOld"
	ReasonVersionUnknown      = "VersionUnknown"
	ReasonKeyAccepted         = "KeyAccepted"
	ReasonKeyRejected         = "KeyRejected"
	ReasonNotChecked          = "NotChecked"
	ReasonIsHostOrg           = "HostOrg"
	ReasonNotHostOrg          = "NotHostOrg"
	ReasonHostOrgNotSet       = "HostOrgNotSet"
	ReasonCannotVerify        = "CannotVerify"
	ReasonIsSiteAdmin         = "SiteAdmin"
	ReasonNotSiteAdmin        = "NotSiteAdmin"
	ReasonPermWarninglist     = "PermWarninglist"
	ReasonPermissionMissing   = "PermissionMissing"
	ReasonReady               = "Ready"
	ReasonLimitedCapabilities = "LimitedCapabilities"
)

// minVersion is the first MISP with custom warninglists and perm_warninglist
// (commit 8dc740cc3, tag v2.4.145; misp-api.md §2.6 "Version history").
var minVersion = [3]int{2, 4, 145}

// instanceCheck is the outcome of one check of a MISPInstance.
type instanceCheck struct {
	Conditions []metav1.Condition // Reachable, Authenticated, HostOrg, SiteAdmin, WarninglistPermission, Ready
	Version    string
	Identity   *v1alpha1.MISPIdentity
	// Transient is set when MISP could not be asked (network, 5xx, 429):
	// the reconciler backs off instead of waiting for the resync interval.
	Transient error
}

// checkInstance asks MISP what the key can do: GET /servers/getVersion, GET
// /users/view/me and, for site admins, GET /servers/getSetting/MISP.host_org_id
// (only site admins may read settings; /users/view/me does not say whether
// the user's organisation is the host organisation).
func checkInstance(ctx context.Context, api instanceAPI, url string) instanceCheck {
	var ck instanceCheck
	reachable, authenticated := notChecked(v1alpha1.ConditionReachable), notChecked(v1alpha1.ConditionAuthenticated)
	hostOrg, siteAdmin, perm := notChecked(v1alpha1.ConditionHostOrg), notChecked(v1alpha1.ConditionSiteAdmin), notChecked(v1alpha1.ConditionWarninglistPermission)
	finish := func() instanceCheck {
		ck.Conditions = []metav1.Condition{reachable, authenticated, hostOrg, siteAdmin, perm}
		ck.Conditions = append(ck.Conditions, readyCondition(ck.Conditions))
		return ck
	}

	v, err := api.Version(ctx)
	switch {
	case errors.Is(err, misp.ErrUnauthorized):
		// MISP answered: it is reachable, but getVersion needs a valid key.
		reachable = cond(v1alpha1.ConditionReachable, metav1.ConditionTrue, ReasonReachable,
			fmt.Sprintf("MISP at %s answered; its version can only be read with a valid API key.", url))
		authenticated = cond(v1alpha1.ConditionAuthenticated, metav1.ConditionFalse, ReasonKeyRejected, keyRejectedMessage(err))
		return finish()
	case err != nil:
		reason, transient := classifyReachError(err)
		reachable = cond(v1alpha1.ConditionReachable, metav1.ConditionFalse, reason, fmt.Sprintf("Cannot read the MISP version at %s: %v.", url, trimDot(err)))
		if transient {
			ck.Transient = err
		}
		return finish()
	}
	// What MISP says goes into conditions and status: bounded (a broken or
	// hostile MISP must not bloat the object).
	v.Version = truncateMISP(v.Version)
	ck.Version = v.Version
	switch ok, parsed := versionAtLeast(v.Version, minVersion); {
	case !parsed:
		reachable = cond(v1alpha1.ConditionReachable, metav1.ConditionFalse, ReasonVersionUnknown,
			fmt.Sprintf("MISP at %s reports version %q, which is not a MISP version number; custom warninglists need 2.4.145 or later.", url, v.Version))
	case !ok:
		reachable = cond(v1alpha1.ConditionReachable, metav1.ConditionFalse, ReasonVersionTooOld,
			fmt.Sprintf("MISP at %s runs %s; custom warninglists need 2.4.145 or later: upgrade MISP.", url, v.Version))
	default:
		reachable = cond(v1alpha1.ConditionReachable, metav1.ConditionTrue, ReasonReachable, fmt.Sprintf("MISP %s at %s answered.", v.Version, url))
	}

	me, err := api.WhoAmI(ctx)
	switch {
	case errors.Is(err, misp.ErrUnauthorized):
		authenticated = cond(v1alpha1.ConditionAuthenticated, metav1.ConditionFalse, ReasonKeyRejected, keyRejectedMessage(err))
		return finish()
	case err != nil:
		authenticated = cond(v1alpha1.ConditionAuthenticated, metav1.ConditionUnknown, ReasonNotChecked, fmt.Sprintf("Cannot read the key's user (/users/view/me): %v.", trimDot(err)))
		if _, transient := classifyReachError(err); transient {
			ck.Transient = err
		}
		return finish()
	}
	for _, f := range []*string{&me.Email, &me.OrgName, &me.OrgUUID, &me.RoleName, &me.OrgID} {
		*f = truncateMISP(*f)
	}
	ck.Identity = &v1alpha1.MISPIdentity{Email: me.Email, OrgName: me.OrgName, OrgUUID: me.OrgUUID, Role: me.RoleName}
	authenticated = cond(v1alpha1.ConditionAuthenticated, metav1.ConditionTrue, ReasonKeyAccepted,
		fmt.Sprintf("The API key belongs to %s of organisation %s (role %s).", me.Email, me.OrgName, me.RoleName))

	if me.SiteAdmin {
		siteAdmin = cond(v1alpha1.ConditionSiteAdmin, metav1.ConditionTrue, ReasonIsSiteAdmin, "The key is a site admin: it can publish partners' events and remove their global tags.")
	} else {
		siteAdmin = cond(v1alpha1.ConditionSiteAdmin, metav1.ConditionFalse, ReasonNotSiteAdmin,
			fmt.Sprintf("The key's role %s is not a site admin: publishing partners' events fails (405) and their workflow:state=\"incomplete\" tag cannot be removed (403); use a site admin key for policies with publish: true.", me.RoleName))
	}
	switch {
	case me.SiteAdmin:
		perm = cond(v1alpha1.ConditionWarninglistPermission, metav1.ConditionTrue, ReasonIsSiteAdmin, "The key is a site admin: it can create and edit warninglists.")
	case me.PermWarninglist:
		perm = cond(v1alpha1.ConditionWarninglistPermission, metav1.ConditionTrue, ReasonPermWarninglist, fmt.Sprintf("The key's role %s has perm_warninglist.", me.RoleName))
	default:
		perm = cond(v1alpha1.ConditionWarninglistPermission, metav1.ConditionFalse, ReasonPermissionMissing,
			fmt.Sprintf("The key's role %s lacks perm_warninglist: warninglists cannot be created or edited. Give the role perm_warninglist or use a site admin key.", me.RoleName))
	}

	if !me.SiteAdmin {
		hostOrg = cond(v1alpha1.ConditionHostOrg, metav1.ConditionUnknown, ReasonCannotVerify,
			fmt.Sprintf("Only a site admin can read MISP.host_org_id; local tags fail (403) unless organisation %s is the host organisation.", me.OrgName))
		return finish()
	}
	hostID, err := api.HostOrgID(ctx)
	hostID = truncateMISP(hostID)
	switch {
	case err != nil:
		hostOrg = cond(v1alpha1.ConditionHostOrg, metav1.ConditionUnknown, ReasonNotChecked, fmt.Sprintf("Cannot read MISP.host_org_id: %v.", trimDot(err)))
		if _, transient := classifyReachError(err); transient {
			ck.Transient = err
		}
	case hostID == "":
		hostOrg = cond(v1alpha1.ConditionHostOrg, metav1.ConditionFalse, ReasonHostOrgNotSet,
			"MISP.host_org_id is not set: local tags fail (403). Set it to the organisation of the operator's key.")
	case hostID != me.OrgID:
		hostOrg = cond(v1alpha1.ConditionHostOrg, metav1.ConditionFalse, ReasonNotHostOrg,
			fmt.Sprintf("The key's organisation %s (id %s) is not the host organisation (MISP.host_org_id %s): local tags fail (403). Use a key of a host organisation user.", me.OrgName, me.OrgID, hostID))
	default:
		hostOrg = cond(v1alpha1.ConditionHostOrg, metav1.ConditionTrue, ReasonIsHostOrg, fmt.Sprintf("The key's organisation %s is the host organisation: it can attach local tags.", me.OrgName))
	}
	return finish()
}

// credentialCheck is the outcome when no client could be built.
func credentialCheck(ce *credentialError) instanceCheck {
	reachable := notChecked(v1alpha1.ConditionReachable)
	authenticated := cond(v1alpha1.ConditionAuthenticated, metav1.ConditionFalse, ce.Reason, ce.Message)
	switch ce.Reason {
	case ReasonCABundleNotFound, ReasonCABundleInvalid, ReasonInvalidConfiguration, trust.ReasonHostNotAllowed, trust.ReasonInsecureURL:
		reachable = cond(v1alpha1.ConditionReachable, metav1.ConditionFalse, ce.Reason, ce.Message)
		authenticated = notChecked(v1alpha1.ConditionAuthenticated)
	}
	conds := []metav1.Condition{reachable, authenticated, notChecked(v1alpha1.ConditionHostOrg), notChecked(v1alpha1.ConditionSiteAdmin), notChecked(v1alpha1.ConditionWarninglistPermission)}
	return instanceCheck{Conditions: append(conds, readyCondition(conds))}
}

func notChecked(typ string) metav1.Condition {
	return cond(typ, metav1.ConditionUnknown, ReasonNotChecked, "Not checked: an earlier check failed.")
}

// readyCondition summarises: Ready needs Reachable, Authenticated and
// WarninglistPermission (what the controller itself needs). HostOrg and
// SiteAdmin only limit curation: Ready stays True with LimitedCapabilities.
func readyCondition(conds []metav1.Condition) metav1.Condition {
	byType := map[string]metav1.Condition{}
	for _, c := range conds {
		byType[c.Type] = c
	}
	// The first False condition names the problem; one merely not checked
	// (Unknown) only counts when nothing is False.
	var unknown *metav1.Condition
	for _, t := range []string{v1alpha1.ConditionReachable, v1alpha1.ConditionAuthenticated, v1alpha1.ConditionWarninglistPermission} {
		c := byType[t]
		switch {
		case c.Status == metav1.ConditionFalse:
			return cond(v1alpha1.ConditionReady, metav1.ConditionFalse, c.Reason, fmt.Sprintf("%s: %s", t, c.Message))
		case c.Status != metav1.ConditionTrue && unknown == nil:
			unknown = &c
		}
	}
	if unknown != nil {
		reason := unknown.Reason
		if reason == ReasonNotChecked {
			reason = "NotReady"
		}
		return cond(v1alpha1.ConditionReady, metav1.ConditionFalse, reason, fmt.Sprintf("%s: %s", unknown.Type, unknown.Message))
	}
	var limits []string
	for _, t := range []string{v1alpha1.ConditionHostOrg, v1alpha1.ConditionSiteAdmin} {
		if c := byType[t]; c.Status != metav1.ConditionTrue {
			limits = append(limits, fmt.Sprintf("%s %s (%s)", t, c.Status, c.Reason))
		}
	}
	if len(limits) > 0 {
		return cond(v1alpha1.ConditionReady, metav1.ConditionTrue, ReasonLimitedCapabilities,
			fmt.Sprintf("The key can manage warninglists; curation is limited: %s. See those conditions.", strings.Join(limits, ", ")))
	}
	return cond(v1alpha1.ConditionReady, metav1.ConditionTrue, ReasonReady, "The key can manage warninglists, attach local tags and publish partners' events.")
}

// classifyReachError maps a failed call to a Reachable reason and whether
// retrying soon may help.
func classifyReachError(err error) (reason string, transient bool) {
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var he x509.HostnameError
	var rhe tls.RecordHeaderError
	switch {
	case errors.As(err, &cve), errors.As(err, &uae), errors.As(err, &he), errors.As(err, &rhe):
		return ReasonTLSError, false
	case errors.Is(err, misp.ErrServer), errors.Is(err, misp.ErrRateLimited):
		return ReasonServerError, true
	case errors.Is(err, misp.ErrUnexpectedResponse), errors.Is(err, misp.ErrNotFound), errors.Is(err, misp.ErrForbidden),
		errors.Is(err, misp.ErrNotAllowed), errors.Is(err, misp.ErrValidation):
		return ReasonUnexpectedResponse, false
	case errors.Is(err, context.Canceled):
		return ReasonUnreachable, false
	}
	return ReasonUnreachable, true
}

func keyRejectedMessage(err error) string {
	msg := "MISP refused the API key"
	var ae *misp.APIError
	if errors.As(err, &ae) && ae.Message != "" {
		msg += ": " + trimDot(errors.New(ae.Message))
	}
	return msg + ". Check the key in the Secret (an API-enabled user's 40-character key)."
}

// trimDot renders an error without a final period, to embed it in a sentence.
// MISP's own text inside err is bounded (maxMISPError).
func trimDot(err error) string {
	s := strings.TrimRight(err.Error(), ". ")
	if len(s) > maxMISPError {
		cut := maxMISPError
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// versionAtLeast compares a MISP version "2.5.1" (suffixes like "2.4.199-rc1"
// ignored) with min; parsed is false when v has no major.minor.patch.
func versionAtLeast(v string, min [3]int) (ok, parsed bool) {
	parts := strings.SplitN(strings.TrimPrefix(strings.TrimSpace(v), "v"), ".", 3)
	if len(parts) != 3 {
		return false, false
	}
	var got [3]int
	for i, p := range parts {
		end := 0
		for end < len(p) && p[end] >= '0' && p[end] <= '9' {
			end++
		}
		n, err := strconv.Atoi(p[:end])
		if err != nil {
			return false, false
		}
		got[i] = n
	}
	for i := range got {
		if got[i] != min[i] {
			return got[i] > min[i], true
		}
	}
	return true, true
}
