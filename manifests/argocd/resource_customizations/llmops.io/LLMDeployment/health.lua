-- Argo CD health check for llmops.io/LLMDeployment.
--
-- The operator never writes spec; it reports status.observedGeneration, status.phase and
-- conditions (Available, Progressing, Degraded, ModelCached, Evaluated). Order matters:
--   1. a spec change the operator has not seen yet          -> Progressing
--   2. Degraded=True, or phase Failed / RolledBack / Degraded -> Degraded (phase Degraded: a
--      rolled-out revision lost replicas to a problem its pods show, a crash or no GPU left)
--   3. a rollout paused by its analysis (Progressing reason Paused*/*Paused, such as
--      CanaryPaused: no data, a query Prometheus rejected; or RetrainAwaitingApproval)
--                                                            -> Suspended
--   4. Serving with Available=True, or scaled to zero        -> Healthy; the message says, first
--      found: drift (Drifted=True: the signals and their numbers), a retrained model serving
--      that spec.model does not name (PinnedToSpec=False: the lines to commit), the last
--      retrained candidate rejected (Candidate=False: by how much), capture losing records
--      (CaptureDegraded=True). None of these stops the model from serving: Healthy, as a
--      Deployment is; Degraded stays for what does not run.
--   5. any phase on the way there                            -> Progressing, including a
--      canary held with status.canary.state Paused for a reason that clears by itself
--      (its pods wait for GPUs, its smoke evaluation is retried)
-- A paused canary's message is the canary's own (status.canary.message): why it waits. A
-- retrained candidate awaiting approval is Suspended with the Candidate condition's message
-- (which run to name in llmops.io/approve-retrain, or which value named no run).
-- RolledBack is Degraded although the previous revision still serves: the revision in git is
-- not running and will not be without a change, which is what Degraded tells an Argo CD user
-- (Argo CD's own Rollout check calls an aborted rollout Degraded for the same reason).
-- Suspended, as Argo CD's own check of a paused Argo Rollout: the analysis waits for a human
-- or for data; a canary waiting for GPUs resumes on its own, as a Deployment whose pods wait
-- for capacity is Progressing.
-- Every field read here is one the operator writes (the fixtures in tests/ are statuses
-- recorded from real runs: `make argocd-fixtures`).
-- Written for Argo CD's Lua 5.1 (gopher-lua) sandbox: no os, io or require.
local hs = {}

local function condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function message_of(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local function is_pause_reason(reason)
  if reason == nil then
    return false
  end
  return string.find(reason, "^Paused") ~= nil or string.find(reason, "Paused$") ~= nil
    or reason == "RetrainAwaitingApproval"
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local phase = status.phase
local available = condition(status, "Available")
local progressing = condition(status, "Progressing")
local degraded = condition(status, "Degraded")

if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = message_of(degraded, "Degraded")
  return hs
end

if phase == "Failed" or phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = message_of(degraded, message_of(progressing, "Phase " .. phase))
  return hs
end

if phase == "RolledBack" then
  -- The canary's verdict (Promoted=False, reason RolledBack) says why, with the numbers.
  hs.status = "Degraded"
  hs.message = message_of(condition(status, "Promoted"), message_of(status.canary,
    "Rolled back: the new revision failed its analysis; the previous revision still serves"))
  return hs
end

local canary = status.canary
local canary_paused = phase == "Canary" and canary ~= nil and canary.state == "Paused"

if progressing ~= nil and is_pause_reason(progressing.reason) then
  hs.status = "Suspended"
  local candidate = nil
  if progressing.reason == "RetrainAwaitingApproval" then
    candidate = condition(status, "Candidate")
  end
  hs.message = message_of(canary_paused and canary or candidate,
    message_of(progressing, "The rollout is paused"))
  return hs
end

if canary_paused then
  hs.status = "Progressing"
  hs.message = message_of(canary, message_of(progressing, "The canary is paused"))
  return hs
end

-- What a Healthy message says instead of Available's: drift, a retrained model serving outside
-- git, a rejected candidate, capture losing records.
local function serving_note()
  local drifted = condition(status, "Drifted")
  if drifted ~= nil and drifted.status == "True" then
    return drifted
  end
  local pinned = condition(status, "PinnedToSpec")
  if pinned ~= nil and pinned.status == "False" then
    return pinned
  end
  local candidate = condition(status, "Candidate")
  if candidate ~= nil and candidate.status == "False" and candidate.reason ~= "SpecChanged" then
    return candidate
  end
  local capture = condition(status, "CaptureDegraded")
  if capture ~= nil and capture.status == "True" then
    return capture
  end
  return nil
end

if phase == "Serving" then
  if available ~= nil and available.status == "True" then
    hs.status = "Healthy"
    hs.message = message_of(serving_note(), message_of(available, "Serving"))
    return hs
  end
  -- spec.replicas 0 is what git asks for, and it is done: Healthy, as Argo CD's check calls a
  -- Deployment scaled to zero.
  if available ~= nil and available.reason == "ScaledToZero" then
    hs.status = "Healthy"
    hs.message = message_of(available, "Scaled to zero")
    return hs
  end
  hs.status = "Progressing"
  hs.message = message_of(available, "Waiting for the serving pods to become available")
  return hs
end

-- The condition of the stage a phase waits in says what it waits for (a download, a PVC, the
-- staging pod); Progressing only says which stage it is.
local function stage_condition(phase)
  local wanted = nil
  if phase == "Pending" or phase == "Caching" then
    wanted = { "ModelCached", "Available" }
  elseif phase == "Evaluating" then
    wanted = { "Evaluated" }
  else
    return nil
  end
  for _, ctype in ipairs(wanted) do
    local c = condition(status, ctype)
    if c ~= nil and c.status ~= "True" and c.message ~= nil and c.message ~= "" then
      return c
    end
  end
  return nil
end

if phase == nil or phase == "Pending" or phase == "Caching" or phase == "Evaluating" or phase == "Canary"
  or phase == "Retraining" then
  hs.status = "Progressing"
  hs.message = message_of(stage_condition(phase), message_of(progressing, "Phase " .. (phase or "unknown")))
  return hs
end

hs.status = "Unknown"
hs.message = "Unrecognised phase " .. tostring(phase)
return hs
