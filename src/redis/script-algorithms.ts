/**
 * The four algorithms of src/limiter/algorithms in Lua 5.1 (Redis's), line for line over the
 * same doubles, with their operator's Set: the middle of every script (script.ts puts the
 * clock and the calendars before them, and the value codec and the mains after).
 */
export const ALGORITHMS_LUA = `-- c = {s0, s1, s2, freshAt}; p = {limit, window, cap, cost}; o = {allowed, remaining, resetAt, retryAfter, wait}

-- token bucket: c = {tokens, at, rate of the request that last wrote it (0: not known), freshAt}
local function tbInit(c, p, t) c[1] = p[3]; c[2] = t; c[3] = p[1] / p[2]; c[4] = t end
local function tbRefill(c, p, t, rate)
  local at, tokens = c[2], c[1]
  if t > at then
    -- the time passed refills at the slower of the stored rate and the request's (token-bucket.ts)
    local stored = c[3]
    if stored > 0 and stored < rate then tokens = tokens + (t - at) * stored
    else tokens = tokens + ((t - at) * p[1]) / p[2] end
    c[2] = t
  end
  if tokens < p[3] then c[1] = tokens else c[1] = p[3] end
end
local function tbStep(c, p, t, maxWait, o)
  local rate = p[1] / p[2]
  tbRefill(c, p, t, rate)
  local tokens = c[1]
  local msPerToken = p[2] / p[1]
  local deficit = p[4] - tokens
  o[4] = 0; o[5] = 0
  if deficit <= EPS then
    o[1] = 1; tokens = tokens - p[4]
  else
    local wait = delayFrom(t, deficit * msPerToken)
    if wait <= maxWait then o[1] = 1; o[5] = wait; tokens = tokens - p[4]
    else o[1] = 0; o[4] = wait end
  end
  c[1] = tokens; c[3] = rate
  local fullAt = c[2] + (p[3] - tokens) * msPerToken
  if tokens > 0 then o[2] = floor(tokens + EPS) else o[2] = 0 end
  o[3] = fullAt; c[4] = fullAt
end

-- GCRA: c = {tatWhole, tatFraction, interval of the request that last wrote it (0: not known), freshAt}
local function tatMinusNow(c, t)
  local whole = floor(t)
  return c[1] - whole + (c[2] - (t - whole))
end
local function setTat(c, whole, fraction)
  local carry = floor(fraction)
  c[1] = whole + carry; c[2] = fraction - carry
end
local function gcraInit(c, p, t) setTat(c, floor(t), t - floor(t)); c[3] = p[2] / p[1]; c[4] = t end
-- the units consumed kept across a change of rate: the TAT's lead over now re-scaled (gcra.ts)
local function gcraRescale(c, interval, t)
  local stored = c[3]
  c[3] = interval
  if not (stored > 0) or stored == interval then return end
  local ahead = tatMinusNow(c, t)
  if ahead <= 0 then return end
  local whole = floor(t)
  setTat(c, whole, t - whole + ahead * (interval / stored))
end
local function gcraStep(c, p, t, maxWait, o)
  local interval = p[2] / p[1]
  local tolerance = p[3] * interval
  gcraRescale(c, interval, t)
  if tatMinusNow(c, t) < 0 then gcraInit(c, p, t) end
  local ahead = tatMinusNow(c, t) + p[4] * interval
  local slack = min(interval * 1e-3, 1e-6 + tolerance * 1e-15)
  local wait = 0
  if ahead - tolerance > slack then wait = delayFrom(t, ahead - tolerance) end
  o[4] = 0; o[5] = 0
  local commit = false
  if wait == 0 then commit = true
  elseif wait <= maxWait then commit = true; o[5] = wait
  else o[4] = wait end
  if commit then o[1] = 1; setTat(c, c[1], c[2] + p[4] * interval) else o[1] = 0 end
  local behind = max(0, tatMinusNow(c, t))
  local remaining = floor((tolerance - behind) / interval + EPS)
  if remaining > 0 then o[2] = remaining else o[2] = 0 end
  local fullAt = t + behind
  o[3] = fullAt; c[4] = fullAt
end

-- fixed window: c = {start, count, -, freshAt}
local function fwInit(c, p, t) c[1] = wStart(p, t); c[2] = 0; c[3] = 0; c[4] = t end
local function fwAdvance(c, p, start)
  if c[1] >= start then return end
  local drained = c[2] - wBetween(p, c[1], start) * p[1]
  c[1] = start
  if drained > 0 then c[2] = drained else c[2] = 0 end
end
local function fwStep(c, p, t, maxWait, o)
  fwAdvance(c, p, wStart(p, t))
  local start, count = c[1], c[2]
  local target = targetWindow(count, p[4], p[1])
  local wait = 0
  if target ~= 0 then wait = delayFrom(t, wBoundary(p, start, target) - t) end
  o[4] = 0; o[5] = 0
  if target == 0 then o[1] = 1; count = count + p[4]
  elseif wait <= maxWait then o[1] = 1; o[5] = wait; count = max(count, target * p[1]) + p[4]
  else o[1] = 0; o[4] = wait end
  c[2] = count
  if count < p[1] then o[2] = p[1] - count else o[2] = 0 end
  local drainedAt = wAfter(p, start, max(1, ceil(count / p[1])))
  o[3] = drainedAt
  if count > 0 then c[4] = drainedAt else c[4] = t end
end

-- sliding window: c = {start, current, previous, freshAt}
local function swInit(c, p, t) c[1] = wStart(p, t); c[2] = 0; c[3] = 0; c[4] = t end
local function swAdvance(c, p, start)
  if c[1] >= start then return end
  local windows = wBetween(p, c[1], start)
  local current = c[2]
  c[1] = start
  c[3] = min(p[1], max(0, current - (windows - 1) * p[1]))
  c[2] = max(0, current - windows * p[1])
end
local function decayedEnough(p, start, ahead, previous, room)
  if previous <= room + EPS then return wBoundary(p, start, ahead) end
  if room <= 0 then return wBoundary(p, start, ahead + 1) end
  local boundary = wBoundary(p, start, ahead)
  -- a calendar's boundaries are exact period starts; a fixed window's may be a hair off its grid
  local windowFloor, length = boundary, 0
  if p[5] == nil then windowFloor = windowStart(boundary, p[2]); length = p[2] else length = wLength(p, boundary) end
  local at = max(boundary, windowFloor + (1 - room / previous) * length)
  local i = 0
  while i < 64 and previous * (1 - (at - windowFloor) / length) > room + EPS do at = nextUp(at); i = i + 1 end
  return at
end
-- returns wait, and the count that committing leaves
local function swWaitFor(c, p, t, reserving)
  local start, current, previous, limit = c[1], c[2], c[3], p[1]
  local fraction = min(1, max(0, (t - start) / wLength(p, start)))
  local room = limit - current - p[4]
  local commit = current + p[4]
  if room >= 0 then
    if previous * (1 - fraction) <= room + EPS then return 0, commit end
    -- filling the window (room 0) it runs only as the window ends: counted in the next one
    if reserving and room <= 0 then commit = max(current, limit) + p[4] end
    return decayedEnough(p, start, 0, previous, room) - t, commit
  end
  if reserving then
    local target = max(1, targetWindow(current, p[4], limit))
    local padded = max(current, target * limit)
    local queuedThere = padded - target * limit + p[4]
    commit = padded + p[4]
    if queuedThere >= limit then commit = max(current, (target + 1) * limit) + p[4] end
    return decayedEnough(p, start, target, limit, limit - queuedThere) - t, commit
  end
  local target = max(1, ceil((current + p[4] - limit) / limit))
  local queuedThere = max(0, current - target * limit)
  local previousThere = min(limit, max(0, current - (target - 1) * limit))
  return decayedEnough(p, start, target, previousThere, limit - queuedThere - p[4]) - t, commit
end
local function swStep(c, p, t, maxWait, o)
  swAdvance(c, p, wStart(p, t))
  local w, commit = swWaitFor(c, p, t, maxWait >= 0)
  local wait = 0
  if w > 0 then wait = delayFrom(t, w) end
  o[4] = 0; o[5] = 0
  if wait <= 0 then o[1] = 1; c[2] = commit
  elseif wait <= maxWait then o[1] = 1; o[5] = wait; c[2] = commit
  else
    o[1] = 0
    if maxWait >= 0 then o[4] = delayFrom(t, (swWaitFor(c, p, t, false))) else o[4] = wait end
  end
  local start, current, previous = c[1], c[2], c[3]
  local fraction = min(1, max(0, (t - start) / wLength(p, start)))
  local estimate = previous * (1 - fraction) + current
  local remaining = floor(p[1] - estimate + EPS)
  if remaining > 0 then o[2] = remaining else o[2] = 0 end
  local busy = 0
  if current > 0 then busy = ceil(current / p[1]) + 1 elseif previous > 0 then busy = 1 end
  local freshAt = t
  if busy ~= 0 then freshAt = wAfter(p, start, busy) end
  o[3] = freshAt; c[4] = freshAt
end

local INIT = { [0] = tbInit, [1] = gcraInit, [2] = swInit, [3] = fwInit }
local STEP = { [0] = tbStep, [1] = gcraStep, [2] = swStep, [3] = fwStep }

-- An operator's Set: a state in which r units could be taken now (the algorithms' setRemaining).
local function tbSet(c, p, t, r) c[1] = r; c[2] = t; c[3] = p[1] / p[2]; c[4] = t + (p[3] - r) * (p[2] / p[1]) end
local function gcraSet(c, p, t, r)
  local interval = p[2] / p[1]
  local whole = floor(t)
  setTat(c, whole, t - whole + (p[3] - r) * interval); c[3] = interval; c[4] = c[1] + c[2]
end
local function fwSet(c, p, t, r)
  local start = wStart(p, t)
  c[1] = start; c[2] = p[1] - r; c[3] = 0
  if c[2] > 0 then c[4] = wAfter(p, start, 1) else c[4] = t end
end
local function swSet(c, p, t, r)
  local start = wStart(p, t)
  c[1] = start; c[2] = p[1] - r; c[3] = 0
  if c[2] > 0 then c[4] = wAfter(p, start, 2) else c[4] = t end
end
local SET = { [0] = tbSet, [1] = gcraSet, [2] = swSet, [3] = fwSet }
`;
