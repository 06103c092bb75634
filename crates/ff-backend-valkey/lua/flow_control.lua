-- Flow control inside ff_v2_claim, as `ff_core::flow_control` decides it:
-- a hard-breached budget, a concurrency key at its limit or a rate key
-- without a token passes a candidate over; a fair-share lane is shared
-- across fairness keys by smooth weighted round-robin. Every execution
-- with a flow-control key lives in its namespace's home partition with
-- the policies and their state, so these keys share the claim's slot.

-- A stored JSON string field (`"text"`), or nil.
local function json_text(v)
  if v == nil or v == false or v == 'null' then
    return nil
  end
  return cjson.decode(v)
end

-- Whether a sorts before b byte by byte, as Rust compares strings (Lua's
-- `<` follows the server's collation locale).
local function bytes_before(a, b)
  local n = math.min(string.len(a), string.len(b))
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return string.len(a) < string.len(b)
end

-- `prefix*` or an exact key.
local function parse_pattern(text)
  if string.sub(text, -1) == '*' then
    return {prefix = string.sub(text, 1, -2)}
  end
  return {exact = text}
end

-- How well a pattern matches key: nil when it does not, else a rank
-- (exact above every prefix, longer prefixes above shorter).
local function specificity(pattern, key)
  if pattern.exact ~= nil then
    if pattern.exact == key then
      return math.huge
    end
    return nil
  end
  if string.sub(key, 1, string.len(pattern.prefix)) == pattern.prefix then
    return string.len(pattern.prefix)
  end
  return nil
end

local function most_specific(list, key)
  local best, rank = nil, nil
  for _, p in ipairs(list) do
    local r = specificity(p.pattern, key)
    if r ~= nil and (rank == nil or r > rank) then
      best, rank = p, r
    end
  end
  return best
end

-- The gate of one claim: nil when the namespace has no policies here.
local function load_gate(base, ns, now)
  local flat = redis.call('HGETALL', base .. ':pol:' .. ns)
  local g = {base = base, ns = ns, now = now, conc = {}, rate = {}, budgets = {}, fair = {},
    running = {}, buckets = {}, changed = {}, usage = {}, waiting = {}, any = false,
    passed = {concurrency = 0, rate = 0, budget = 0}}
  for k = 1, #flat, 2 do
    if flat[k] ~= '_v' then
      local policy = cjson.decode(flat[k + 1])
      local spec = policy.spec
      g.any = true
      if spec.kind == 'concurrency' then
        g.conc[#g.conc + 1] = {pattern = parse_pattern(spec.pattern), limit = spec.limit}
      elseif spec.kind == 'rate' then
        g.rate[#g.rate + 1] = {pattern = parse_pattern(spec.pattern), n = spec.n,
          window = spec.window_ms, burst = spec.burst}
      elseif spec.kind == 'budget' then
        g.budgets[#g.budgets + 1] = {name = policy.name, scope = spec.scope,
          limits = spec.limits, every = spec.reset_every_ms}
      elseif spec.kind == 'fair_share' then
        g.fair[spec.lane] = {weights = spec.weights or {}, default = spec.default_weight or 1}
      end
    end
  end
  if not g.any then
    return nil
  end
  return g
end

-- Whether a budget with `every` (ms or nil) is hard-breached by `usage`
-- ({window, used}) now.
local function hard_breached(budget, usage, now)
  if usage == nil then
    return false
  end
  local start = 0
  if budget.every ~= nil and budget.every ~= cjson.null then
    start = math.floor(now / budget.every) * budget.every
  end
  if usage.window ~= start then
    return false
  end
  for _, l in ipairs(budget.limits) do
    if l.hard ~= nil and l.hard ~= cjson.null then
      local used = usage.used[l.dimension] or 0
      if used >= l.hard then
        return true
      end
    end
  end
  return false
end

local function usage_of(g, name)
  local u = g.usage[name]
  if u == nil then
    local text = redis.call('HGET', g.base .. ':use:' .. g.ns .. '|' .. name, 'held')
    if text then
      u = cjson.decode(text)
    else
      u = false
    end
    g.usage[name] = u
  end
  if u == false then
    return nil
  end
  return u
end

-- The bucket of a rate key: {level, at}.
local function bucket_of(g, key, rate)
  local b = g.buckets[key]
  if b == nil then
    local text = redis.call('HGET', g.base .. ':bkt:' .. g.ns, key)
    if text then
      local level, at = string.match(text, '^(%d+):(%-?%d+)$')
      b = {level = tonumber(level), at = tonumber(at)}
    else
      b = {level = rate.burst * rate.window, at = g.now}
    end
    g.buckets[key] = b
  end
  return b
end

-- The bucket of a rate key refilled to now, as
-- `ff_core::flow_control::RatePolicy::refill` does, in exact integers.
local function refilled(g, key, rate)
  local b = bucket_of(g, key, rate)
  local capacity = rate.burst * rate.window
  local elapsed = math.max(0, g.now - b.at)
  local level = capacity
  if elapsed < capacity / rate.n then
    level = math.min(capacity, b.level + elapsed * rate.n)
  end
  return {level = level, at = math.max(b.at, g.now)}
end

-- Takes a token as `ff_core::flow_control::RatePolicy::take` does, in
-- exact integers: whether there was one.
local function take_token(g, key, rate)
  local b = refilled(g, key, rate)
  if b.level < rate.window then
    g.buckets[key] = b
    return false
  end
  g.buckets[key] = {level = b.level - rate.window, at = b.at}
  g.changed[key] = true
  return true
end

-- Whether a budget of fairness key fkey is over its hard limit.
local function budget_held(g, fkey)
  if fkey == nil then
    return false
  end
  for _, budget in ipairs(g.budgets) do
    if budget.scope == fkey and hard_breached(budget, usage_of(g, budget.name), g.now) then
      return true
    end
  end
  return false
end

-- The running count of a concurrency key, as read (and counted since).
local function running_of(g, ckey)
  local running = g.running[ckey]
  if running == nil then
    running = redis.call('ZCOUNT', g.base .. ':crun:' .. g.ns .. '|' .. ckey,
      '(' .. string.format('%d', g.now), '+inf')
    g.running[ckey] = running
  end
  return running
end

-- Counts a candidate passed over for `reason` and says so.
local function pass(g, reason)
  g.passed[reason] = g.passed[reason] + 1
  return true
end

-- Whether a candidate with these keys is held before this claim takes
-- anything: its key at its limit, its bucket empty, its budget breached.
-- A scan passes such candidates over without counting them found, so a
-- backlog under one limit never hides the work behind it.
local function held_now(g, ckey, rkey, fkey)
  if g == nil then
    return false
  end
  if budget_held(g, fkey) then
    return pass(g, 'budget')
  end
  if ckey ~= nil then
    local conc = most_specific(g.conc, ckey)
    if conc ~= nil and running_of(g, ckey) >= conc.limit then
      g.waiting[ckey] = true
      return pass(g, 'concurrency')
    end
  end
  if rkey ~= nil then
    local rate = most_specific(g.rate, rkey)
    if rate ~= nil and refilled(g, rkey, rate).level < rate.window then
      return pass(g, 'rate')
    end
  end
  return false
end

-- Admits candidate c ({..., ckey, rkey, fkey}) or passes it over; an
-- admitted one counts its slot.
local function admit(g, c)
  if g == nil then
    return true
  end
  local ckey, rkey, fkey = c[6], c[7], c[8]
  if budget_held(g, fkey) then
    return not pass(g, 'budget')
  end
  local conc = nil
  if ckey ~= nil then
    conc = most_specific(g.conc, ckey)
    if conc ~= nil and running_of(g, ckey) >= conc.limit then
      g.waiting[ckey] = true
      return not pass(g, 'concurrency')
    end
  end
  if rkey ~= nil then
    local rate = most_specific(g.rate, rkey)
    if rate ~= nil and not take_token(g, rkey, rate) then
      return not pass(g, 'rate')
    end
  end
  if conc ~= nil then
    g.running[ckey] = g.running[ckey] + 1
  end
  return true
end

-- Stores the buckets the claim took tokens from, and marks the
-- concurrency keys it found full as waited on: the transition that frees
-- a slot of such a key announces it (`W` in ff_v2_apply), the others
-- announce nothing.
local function save_gate(g)
  if g == nil then
    return
  end
  for key, _ in pairs(g.waiting) do
    redis.call('HSET', g.base .. ':cwait:' .. g.ns, key, '1')
  end
  for key, _ in pairs(g.changed) do
    local b = g.buckets[key]
    redis.call('HSET', g.base .. ':bkt:' .. g.ns, key,
      string.format('%d:%d', b.level, b.at))
  end
end

local function weight_of(fair, key)
  local w = fair.weights[key]
  if w == nil then
    return fair.default
  end
  return w
end

-- The fair-share key to serve next among `keys` (name -> list with a head
-- at index `at`), as `Credits::choose`: most credit plus weight, ties to
-- the smaller key.
local function choose_key(fair, credits, keys)
  local best, best_credit = nil, nil
  for key, q in pairs(keys) do
    if q.at <= #q.list then
      local credit = (credits[key] or 0) + weight_of(fair, key)
      if best == nil or credit > best_credit
        or (credit == best_credit and bytes_before(key, best)) then
        best, best_credit = key, credit
      end
    end
  end
  return best
end

-- Charges a pick of `chosen` as `Credits::charge` does.
local function charge(fair, credits, keys, chosen)
  local total = 0
  local waiting = {}
  for key, q in pairs(keys) do
    if q.at <= #q.list then
      waiting[key] = true
      total = total + weight_of(fair, key)
    end
  end
  for key, _ in pairs(credits) do
    if not waiting[key] then
      credits[key] = nil
    end
  end
  for key, _ in pairs(waiting) do
    credits[key] = (credits[key] or 0) + weight_of(fair, key)
  end
  credits[chosen] = credits[chosen] - total
end
