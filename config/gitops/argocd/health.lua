-- Argo CD health check for misptrust.io MISPInstance and OrgTrustPolicy
-- (the same script for both kinds; installed by argocd-cm-patch.yaml).
--
-- Healthy:     Ready=True for the current generation.
-- Degraded:    Ready=False for the current generation, with a reason that is
--              not a progress reason (the condition's message says what to fix).
-- Progressing: no status yet, status.observedGeneration or the Ready
--              condition's observedGeneration behind metadata.generation, no
--              Ready condition, Ready=Unknown, or Ready=False with a progress
--              reason.
--
-- Tested with gopher-lua, the Lua VM Argo CD embeds (hack/gitops-check).
-- Keep to Lua 5.1 and the base library.

-- Ready=False with one of these reasons is work under way, not a failure
-- (controllers: ReasonSyncPending, first warninglist write not done yet;
-- ReasonInstanceNotReady, the policy waits for its MISPInstance, whose own
-- health shows what is wrong). Keep in step with config/gitops/flux.
local progressReasons = { SyncPending = true, InstanceNotReady = true }

local hs = { status = "Progressing", message = "Waiting for the operator to report status" }
if obj.status == nil then
  return hs
end

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
local observed = obj.status.observedGeneration
if observed == nil or observed < generation then
  hs.message = "Waiting for the controller to observe generation " .. generation
  return hs
end

local ready = nil
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      ready = c
    end
  end
end
if ready == nil then
  hs.message = "Waiting for the Ready condition"
  return hs
end

local text = (ready.reason or "") .. ": " .. (ready.message or "")
if ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.message = "Ready condition is for an older generation (" .. text .. ")"
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text
elseif ready.status == "False" and not progressReasons[ready.reason] then
  hs.status = "Degraded"
  hs.message = text
else
  hs.message = text
end
return hs
