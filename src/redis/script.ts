import { createHash } from 'node:crypto';

/**
 * ARGV: the clock ('' for Redis's TIME), the grace in ms a fresh key is kept, the number of
 * parameter sets k, k sets of (algorithm id, limit, windowMs, capacity, cost, maxWaitMs,
 * calendar number: 0 for none), then one set number (1-based) per key: a batch of one
 * policy's decisions sends its numbers once; then the number of calendars and, for each, its
 * name (calendarShape) and its numbers (calendar-args.ts).
 */
export const HEADER_ARGS = 3;
export const ARGS_PER_SET = 7;
/**
 * Values per decision in the reply: allowed (0/1), remaining, resetAtMs, retryAfterMs, waitMs;
 * then one: the script's now. A decision refused for its shape answers REFUSED_SHAPE, the held
 * algorithm id, the time its state is fresh, 0, and the held window (a string: see below).
 */
export const REPLY_PER_DECISION = 5;
export const REFUSED_SHAPE = 2;

/**
 * The window part of a key's shape (docs/request-shape.md), as the script records it after the
 * state: windowMs as the client sends it (ioredis: the number's shortest decimal form), or the
 * calendar's unit and time zone (canonical name) — never alike: one is a number, the other has a space.
 * An empty window: not recorded (a value written before shapes were).
 */
export function calendarShape(unit: string, timeZone: string): string {
  return `${unit} ${timeZone}`;
}

/**
 * The four algorithms of src/limiter/algorithms, line for line in Lua 5.1 (Redis's), over
 * the same doubles, so that a key decides exactly as the in-memory core would (a test runs
 * random sequences through both and compares every field). One call decides every key in
 * KEYS in order, atomically. ARGV[1] is the time in ms, or '' for Redis's own clock (TIME):
 * callers' clocks never decide. ARGV[2] is how long a key is kept past the time its state is
 * back to fresh (the in-memory store's freshKeyGraceMs: at the very moment, float rounding
 * can leave a hair of state; and a key reused soon after is not recreated each time).
 *
 * A key's value is one string: the byte 16 + its algorithm id, its three cells and the time
 * its state is fresh again (four doubles, packed: exact), then the window it was written under
 * (calendarShape): 33 bytes and the window. It is set to expire that grace after its state is
 * fresh. The algorithm and the window are the key's shape: a request of another shape is
 * refused (REFUSED_SHAPE) while the state is in use, and writes nothing; once it is fresh, the
 * request starts it afresh under its own (the in-memory store's rule, request-shape.ts). A
 * value of 25 bytes — an algorithm id and three cells, written before shapes were recorded — is
 * read as the request's window when its algorithm is the request's (and rewritten in the new
 * form by the next decision that consumes), and as a state in use until the key expires when it
 * is another's. Anything else (another program's value) reads as no state.
 *
 * The reply is one MessagePack array of numbers (reply.ts), since Redis would truncate a Lua
 * number to an integer, and the held window of a refused decision as a string.
 */
const PRELUDE = `
local floor, ceil, min, max, frexp, ldexp = math.floor, math.ceil, math.min, math.max, math.frexp, math.ldexp
local EPS = 1e-9
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
else
  now = tonumber(ARGV[1])
end

local graceMs = tonumber(ARGV[2])

local function nextUp(x)
  local _, e = frexp(x)
  return x + ldexp(1, e - 53)
end
local function jsRound(x)
  local r = floor(x)
  if x - r >= 0.5 then r = r + 1 end
  return r
end
local function delayFrom(t, delay)
  local at = t + delay
  if at - t < delay and at > 0 then at = nextUp(at) end
  return at - t
end
local function windowStart(t, w) return floor(t / w) * w end
local function windowsBetween(a, b, w) return jsRound((b - a) / w) end
local function targetWindow(count, cost, limit)
  local index = floor(count / limit)
  if count - index * limit + cost <= limit then return index end
  return index + 1
end
local function windowBoundary(start, ahead, w)
  local index = jsRound(start / w) + ahead
  local at = start + ahead * w
  local i = 0
  while i < 64 and floor(at / w) < index do at = nextUp(at); i = i + 1 end
  return at
end

-- Windows of p (windows.ts's *Of functions): p[5] is nil (a fixed window of p[2] ms), a
-- regular grid {phase, len}, or the period starts {s = {...}} around now (calendar-args.ts).
-- A start older than the table's first has had every queued unit run: counted as drained.
local DRAINED = 1e15
local function calIndex(cal, t)
  local s = cal.s
  if t < s[1] or t >= s[#s] then error('ringlimit: the time is outside the calendar periods sent') end
  local lo, hi = 1, #s
  while hi - lo > 1 do
    local mid = floor((lo + hi) / 2)
    if s[mid] <= t then lo = mid else hi = mid end
  end
  return lo
end
local function wStart(p, t)
  local cal = p[5]
  if cal == nil then return windowStart(t, p[2]) end
  if cal.len then return floor((t - cal.phase) / cal.len) * cal.len + cal.phase end
  return cal.s[calIndex(cal, t)]
end
local function wBetween(p, a, b)
  local cal = p[5]
  if cal == nil then return windowsBetween(a, b, p[2]) end
  if cal.len then return jsRound((b - a) / cal.len) end
  if b <= a then return 0 end
  if a < cal.s[1] then return DRAINED end
  return calIndex(cal, b) - calIndex(cal, a)
end
local function wBoundary(p, start, ahead)
  local cal = p[5]
  if cal == nil then return windowBoundary(start, ahead, p[2]) end
  if cal.len then return start + ahead * cal.len end
  local i = calIndex(cal, start) + ahead
  if i > #cal.s then error('ringlimit: past the calendar periods sent') end
  return cal.s[i]
end
local function wAfter(p, start, ahead)
  if p[5] == nil then return start + ahead * p[2] end
  return wBoundary(p, start, ahead)
end
local function wLength(p, start)
  local cal = p[5]
  if cal == nil then return p[2] end
  if cal.len then return cal.len end
  return wBoundary(p, start, 1) - start
end

-- c = {s0, s1, s2, freshAt}; p = {limit, window, cap, cost}; o = {allowed, remaining, resetAt, retryAfter, wait}

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

-- Calendars from ARGV[at]: their count, then a name (the window of their shape), a kind (1 grid, 2 starts) and its numbers each.
local function readCalendars(at)
  local CAL = {}
  for k = 1, tonumber(ARGV[at]) do
    local name = ARGV[at + 1]
    at = at + 1
    if tonumber(ARGV[at + 1]) == 1 then
      CAL[k] = { phase = tonumber(ARGV[at + 2]), len = tonumber(ARGV[at + 3]), name = name }
      at = at + 3
    else
      local n, s = tonumber(ARGV[at + 2]), {}
      for i = 1, n do s[i] = tonumber(ARGV[at + 2 + i]) end
      CAL[k] = { s = s, name = name }
      at = at + 2 + n
    end
  end
  return CAL
end

local function finite(x) return x == x and x ~= math.huge and x ~= -math.huge end
local spack, sunpack, sbyte, ssub = struct.pack, struct.unpack, string.byte, string.sub

-- A key's value: the byte FORMAT + algorithm, three cells and freshAt, then the window (see script.ts).
local FORMAT = 16
local function valueOf(alg, c, window) return spack('<Bdddd', FORMAT + alg, c[1], c[2], c[3], c[4]) .. window end
-- Reads a key's value for a request of algorithm alg and window: 1 and the state in c (decide
-- on it); 0 (start afresh: no value, another program's, or a fresh state of another shape); or
-- ${REFUSED_SHAPE}, the held algorithm, when its state is fresh, and its window (in use: refused).
local function readState(key, raw, alg, window, c)
  if not raw then return 0 end
  local n, tag = #raw, sbyte(raw, 1)
  if n >= 33 and tag >= FORMAT and tag <= FORMAT + 3 then
    local _, s0, s1, s2, freshAt = sunpack('<Bdddd', raw)
    if not (finite(s0) and finite(s1) and finite(s2) and finite(freshAt)) then return 0 end
    local held = ssub(raw, 34)
    if tag == FORMAT + alg and held == window then c[1] = s0; c[2] = s1; c[3] = s2; c[4] = freshAt; return 1 end
    if freshAt <= now then return 0 end
    return ${REFUSED_SHAPE}, tag - FORMAT, freshAt, held
  end
  if n == 25 and tag <= 3 then
    -- Written before shapes: the request's window if the algorithm is its own, else in use while the key lives.
    local _, s0, s1, s2 = sunpack('<Bddd', raw)
    if not (finite(s0) and finite(s1) and finite(s2)) then return 0 end
    if tag == alg then c[1] = s0; c[2] = s1; c[3] = s2; c[4] = now; return 1 end
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then return 0 end
    return ${REFUSED_SHAPE}, tag, now + ttl, ''
  end
  return 0
end

`;

const DECIDE_MAIN = `
local sets = tonumber(ARGV[3])
local whichBase = ${HEADER_ARGS} + sets * ${ARGS_PER_SET}
local CAL = readCalendars(whichBase + #KEYS + 1)
local P, WAIT, ALG, WINDOW = {}, {}, {}, {}
for j = 1, sets do
  local b = ${HEADER_ARGS} + (j - 1) * ${ARGS_PER_SET}
  local cal = CAL[tonumber(ARGV[b + 7])]
  ALG[j] = tonumber(ARGV[b + 1])
  P[j] = { tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5]), cal }
  WAIT[j] = tonumber(ARGV[b + 6])
  if cal == nil then WINDOW[j] = ARGV[b + 3] else WINDOW[j] = cal.name end
end

-- Every key's state in one MGET; a key named twice in a batch reads what its first decision wrote.
local stored = redis.call('MGET', unpack(KEYS))
local written = {}
local reply = {}
local c, o = {0, 0, 0, 0}, {0, 0, 0, 0, 0}
for i = 1, #KEYS do
  local set = tonumber(ARGV[whichBase + i])
  local alg, p, maxWait, window = ALG[set], P[set], WAIT[set], WINDOW[set]
  local key = KEYS[i]
  local raw = written[key]
  if raw == nil then raw = stored[i] end
  local r = (i - 1) * ${REPLY_PER_DECISION}
  local held, heldAlg, heldFreshAt, heldWindow = readState(key, raw, alg, window, c)
  if held == ${REFUSED_SHAPE} then
    -- Another shape while the state is in use: refused, nothing written (not the state, not its expiry).
    reply[r + 1] = ${REFUSED_SHAPE}; reply[r + 2] = heldAlg; reply[r + 3] = heldFreshAt; reply[r + 4] = 0; reply[r + 5] = heldWindow
  else
    if held == 0 then INIT[alg](c, p, now) end
    STEP[alg](c, p, now, maxWait, o)
    -- A peek (cost 0) writes nothing; a state that did not change is not rewritten.
    if p[4] > 0 then
      local value = valueOf(alg, c, window)
      if value ~= raw then
        redis.call('SET', key, value, 'PX', max(0, ceil(c[4] - now)) + graceMs)
        written[key] = value
      end
    end
    reply[r + 1] = o[1]; reply[r + 2] = o[2]; reply[r + 3] = o[3]; reply[r + 4] = o[4]; reply[r + 5] = o[5]
  end
end
reply[#KEYS * ${REPLY_PER_DECISION} + 1] = now
return cmsgpack.pack(reply)
`;

/**
 * An operator's call on one key (KEYS[1]). ARGV: the clock ('' for TIME), the fresh-key
 * grace, the operation (1 inspect, 2 set), the remaining to set, one parameter set as in
 * DECIDE_LUA, and the calendars. Inspect steps a copy at cost 0 and writes nothing (refused as
 * a decision is, for another shape while the state is in use); Set writes the state
 * setRemaining makes under the request's shape (the operator re-describes the key), then
 * inspects it. Reply: [remaining, resetAtMs, now], or for a refused inspect
 * [${REFUSED_SHAPE}, the held algorithm, when its state is fresh, now, the held window].
 */
const ADMIN_MAIN = `
local op, target = tonumber(ARGV[3]), tonumber(ARGV[4])
local alg = tonumber(ARGV[5])
local CAL = readCalendars(5 + ${ARGS_PER_SET})
local cal = CAL[tonumber(ARGV[11])]
local p = { tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), 0, cal }
local window = ARGV[7]
if cal ~= nil then window = cal.name end
local key = KEYS[1]
local c, o = {0, 0, 0, 0}, {0, 0, 0, 0, 0}
if op == 2 then
  SET[alg](c, p, now, target)
  redis.call('SET', key, valueOf(alg, c, window), 'PX', max(0, ceil(c[4] - now)) + graceMs)
else
  local held, heldAlg, heldFreshAt, heldWindow = readState(key, redis.call('GET', key), alg, window, c)
  if held == ${REFUSED_SHAPE} then return cmsgpack.pack({ ${REFUSED_SHAPE}, heldAlg, heldFreshAt, now, heldWindow }) end
  if held == 0 then INIT[alg](c, p, now) end
end
STEP[alg](c, p, now, -1, o)
return cmsgpack.pack({ o[2], o[3], now })
`;

export const DECIDE_LUA = PRELUDE + DECIDE_MAIN;
export const ADMIN_LUA = PRELUDE + ADMIN_MAIN;
export const ADMIN_SHA = createHash('sha1').update(ADMIN_LUA).digest('hex');

export const DECIDE_SHA = createHash('sha1').update(DECIDE_LUA).digest('hex');
