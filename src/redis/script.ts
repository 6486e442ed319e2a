import { createHash } from 'node:crypto';
import { ALGORITHMS_LUA } from './script-algorithms.js';

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

` + ALGORITHMS_LUA + `
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
