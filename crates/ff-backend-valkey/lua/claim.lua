-- ff_v2_claim: claims up to n executions of the given lanes in one
-- partition, in claim order (priority, higher first, then ready_at, then
-- id), exactly as `ff_core::lease::claim` does: a new attempt unless the
-- last lease was released, a new lease epoch, the lease and attempt
-- deadlines from now, the worker, a new attempt record, and the lease
-- token the caller drew for it.
--
-- KEYS[1]  the partition's key base
-- ARGV     now, worker_id, n, tokens, namespace, k, k capabilities, lanes...
--          where tokens is n lease tokens of 32 hex digits, concatenated
-- Returns {hint, claimed...}: each claimed execution as HGETALL answers it,
-- after the claim. hint says when a claim here can next find work when
-- this one found less than n: '' when it cannot tell (keep asking), 'inf'
-- when the lanes hold nothing, else the epoch ms of the earliest due entry;
-- in a namespace with flow-control policies it ends `;c,r,b`, how many
-- candidates concurrency, rate and budget limits passed over.

-- Entries one lane may pass over (a capability missing, past the deadline)
-- before the claim stops looking; the hint then says to ask again.
local SCAN_BUDGET = 1000

-- Due scheduled executions moved into one lane's queue per claim at most.
local MOVE_BUDGET = 1000

-- A queue score is rank * 2^42 + ready_at (see keys.rs): the due time is
-- read off the score without opening the hash.
local READY_SPAN = 4398046511104

local function field_number(v)
  if v == nil or v == false or v == 'null' then
    return nil
  end
  return tonumber(v)
end

-- Whether the worker holding caps may run an execution needing `needed`
-- (a JSON array of names, which cannot contain quotes).
local function capable(needed, caps)
  for cap in string.gmatch(needed or '', '"([^"]+)"') do
    if not caps[cap] then
      return false
    end
  end
  return true
end

-- Moves the lane's due scheduled executions (members `<rank>|<id>` of its
-- `later` set, scored by due time) into its queue, or with a fairness key
-- that key's queue (named in the lane's `fkeys` set); answers when the
-- next one falls due, or nil.
local function move_due(base, later, queue, fkeys, now)
  local due = redis.call('ZRANGE', later, '-inf', now, 'BYSCORE', 'LIMIT', 0, MOVE_BUDGET,
    'WITHSCORES')
  for k = 1, #due, 2 do
    local member, at = due[k], tonumber(due[k + 1])
    local rank, id = string.match(member, '^(%d+)|(.+)$')
    local fkey = json_text(redis.call('HGET', base .. ':e:' .. id, 'fairness_key'))
    local target = queue
    if fkey ~= nil then
      target = queue .. '\n' .. fkey
      redis.call('ZADD', fkeys, 0, fkey)
    end
    redis.call('ZADD', target, tonumber(rank) * READY_SPAN + at, id)
    redis.call('ZREM', later, member)
  end
  local next = redis.call('ZRANGE', later, 0, 0, 'WITHSCORES')
  if next[2] then
    return tonumber(next[2])
  end
  return nil
end

-- Up to n claimable entries of one queue in claim order, each
-- {id, score, lane, queue, state, concurrency key, rate key, fairness key};
-- whether the queue was seen to its end;
-- whether anything was passed over for a reason time will not cure; and
-- the earliest due time of the entries not yet due.
local function lane_candidates(base, queue, lane, n, now, caps, gate)
  local found, next_due, passed_over = {}, nil, false
  local offset, page = 0, n + 32
  while #found < n do
    if offset >= SCAN_BUDGET then
      return found, false, passed_over, next_due
    end
    local got = redis.call('ZRANGE', queue, offset, offset + page - 1, 'WITHSCORES')
    for k = 1, #got, 2 do
      local id, score = got[k], tonumber(got[k + 1])
      local ready_at = score - math.floor(score / READY_SPAN) * READY_SPAN
      if ready_at > now then
        if next_due == nil or ready_at < next_due then
          next_due = ready_at
        end
      elseif #found < n then
        local f = redis.call('HMGET', base .. ':e:' .. id, 'state', 'deadline', 'capabilities',
          'concurrency_key', 'rate_key', 'fairness_key')
        local deadline = field_number(f[2])
        local ckey, rkey, fkey = json_text(f[4]), json_text(f[5]), json_text(f[6])
        if (f[1] ~= '"ready"' and f[1] ~= '"scheduled"')
          or (deadline ~= nil and deadline <= now)
          or not capable(f[3], caps)
          or held_now(gate, ckey, rkey, fkey) then
          passed_over = true
        else
          found[#found + 1] = {id, score, lane, queue, f[1], ckey, rkey, fkey}
        end
      end
    end
    if #got < 2 * page then
      return found, true, passed_over, next_due
    end
    offset = offset + page
  end
  return found, false, passed_over, next_due
end

-- Moves one execution to running as `ff_core::lease::claim` does and
-- answers its fields after the claim.
local function take(base, ns, counts, c, now, now_text, worker_json, token)
  local id, lane, queue, state = c[1], c[3], c[4], c[5]
  local key = base .. ':e:' .. id
  local flat = redis.call('HGETALL', key)
  local at = {}
  for k = 1, #flat, 2 do
    at[flat[k]] = k + 1
  end
  local function get(name)
    local i = at[name]
    if i then
      return flat[i]
    end
    return nil
  end
  local attempt = tonumber(get('attempt'))
  if get('reuse_attempt') ~= 'true' then
    attempt = attempt + 1
  end
  local epoch = tonumber(get('lease_epoch')) + 1
  local lease_until = now + tonumber(get('lease_ms'))
  local timeout = field_number(get('attempt_timeout_ms'))
  local attempt_deadline = 'null'
  local expires = lease_until
  if timeout ~= nil then
    attempt_deadline = string.format('%d', now + timeout)
    if now + timeout < expires then
      expires = now + timeout
    end
  end
  local record = '{"attempt":' .. string.format('%d', attempt) .. ',"lease_epoch":' ..
    string.format('%d', epoch) .. ',"worker_id":' .. worker_json .. ',"started_at":' ..
    now_text .. ',"ended_at":null,"end":null,"error":null}'
  local attempts = get('attempts') or '[]'
  if attempts == '[]' then
    attempts = '[' .. record .. ']'
  else
    attempts = string.sub(attempts, 1, -2) .. ',' .. record .. ']'
  end
  local changes = {
    'state', '"running"',
    'attempt', string.format('%d', attempt),
    'reuse_attempt', 'false',
    'lease_epoch', string.format('%d', epoch),
    'lease_token', '"' .. token .. '"',
    'lease_until', string.format('%d', lease_until),
    'attempt_deadline', attempt_deadline,
    'worker_id', worker_json,
    'updated_at', now_text,
    'attempts', attempts,
    '_v', string.format('%d', tonumber(get('_v')) + 1),
  }
  redis.call('HSET', key, unpack(changes))
  -- Answer the record as it now is, without reading it again.
  for k = 1, #changes, 2 do
    local i = at[changes[k]]
    if i then
      flat[i] = changes[k + 1]
    else
      flat[#flat + 1] = changes[k]
      flat[#flat + 1] = changes[k + 1]
    end
  end
  redis.call('ZREM', queue, id)
  if state == '"scheduled"' then
    -- Due, so already moved out of the lane's `later` set.
    redis.call('ZREM', base .. ':sched', id)
  end
  redis.call('ZADD', base .. ':run', expires, id)
  if c[6] ~= nil then
    redis.call('ZADD', base .. ':crun:' .. ns .. '|' .. c[6], expires, id)
  end
  local was = lane .. '\n' .. string.sub(state, 2, -2)
  if redis.call('HINCRBY', counts, was, -1) <= 0 then
    redis.call('HDEL', counts, was)
  end
  redis.call('HINCRBY', counts, lane .. '\nrunning', 1)
  return flat
end

-- Claim order of two candidates: score, then id.
local function before(a, b)
  if a[2] ~= b[2] then
    return a[2] < b[2]
  end
  return bytes_before(a[1], b[1])
end

-- One lane's candidates from its queue and each fairness key's queue:
-- {plain = sorted list} or, on a fair-share lane, {fair = policy, keys =
-- key -> {list, at}, credits}; and what the scan learned.
local function lane_source(base, ns, lane, n, want, now, caps, gate)
  local queue = base .. ':q:' .. ns .. '|' .. lane
  local fkeys = base .. ':fk:' .. ns .. '|' .. lane
  local due = move_due(base, base .. ':l:' .. ns .. '|' .. lane, queue, fkeys, now)
  local queues = {{queue, ns}}
  for _, fkey in ipairs(redis.call('ZRANGE', fkeys, 0, -1)) do
    local q = queue .. '\n' .. fkey
    if redis.call('EXISTS', q) == 1 then
      queues[#queues + 1] = {q, fkey}
    else
      redis.call('ZREM', fkeys, fkey)
    end
  end
  local seen_all, passed_over = true, false
  local by_key = {}
  local fair = gate and gate.fair[lane]
  local total = 0
  if fair ~= nil then
    for _, q in ipairs(queues) do
      total = total + weight_of(fair, q[2])
    end
  end
  for _, q in ipairs(queues) do
    local read = want
    if fair ~= nil then
      -- A key's share of the claim and some slack, as
      -- `ff_core::flow_control::fair_fetch` reads it.
      read = math.min(math.ceil(n * weight_of(fair, q[2]) / total), n) + 4
    end
    local found, ended, passed, d = lane_candidates(base, q[1], lane, read, now, caps, gate)
    seen_all = seen_all and ended
    passed_over = passed_over or passed
    if d ~= nil and (due == nil or d < due) then
      due = d
    end
    if #found > 0 then
      by_key[q[2]] = found
    end
  end
  local source
  if fair ~= nil then
    local credits_key = base .. ':fair:' .. ns .. '|' .. lane
    local text = redis.call('GET', credits_key)
    local credits = {}
    if text then
      credits = cjson.decode(text).credit or {}
    end
    local keys = {}
    for key, list in pairs(by_key) do
      keys[key] = {list = list, at = 1}
    end
    source = {fair = fair, keys = keys, credits = credits, credits_key = credits_key}
  else
    local list = {}
    for _, found in pairs(by_key) do
      for _, c in ipairs(found) do
        list[#list + 1] = c
      end
    end
    if #queues > 1 then
      table.sort(list, before)
    end
    source = {plain = list, at = 1}
  end
  return source, seen_all, passed_over, due
end

-- The next candidate of a source and, on a fair lane, its key.
local function head(source)
  if source.plain ~= nil then
    return source.plain[source.at], nil
  end
  local key = choose_key(source.fair, source.credits, source.keys)
  if key == nil then
    return nil, nil
  end
  local q = source.keys[key]
  return q.list[q.at], key
end

local function advance(source, key, taken)
  if source.plain ~= nil then
    source.at = source.at + 1
    return
  end
  if taken then
    charge(source.fair, source.credits, source.keys, key)
  end
  local q = source.keys[key]
  q.at = q.at + 1
end

local function claim(keys, args)
  local base = keys[1]
  local now = tonumber(args[1])
  local worker = args[2]
  local n = tonumber(args[3])
  local tokens = args[4]
  if string.len(tokens) ~= 32 * n or string.find(tokens, '[^0-9a-f]') then
    return redis.error_reply('ff_v2_claim: expected ' .. n .. ' lease tokens')
  end
  local ns = args[5]
  local ncaps = tonumber(args[6])
  local caps = {}
  for j = 1, ncaps do
    caps[args[6 + j]] = true
  end
  local gate = load_gate(base, ns, now)
  local want = n
  if gate ~= nil then
    want = n + 32
    -- Never before a limited attempt that ended here (see keys.rs).
    local latest = tonumber(redis.call('GET', base .. ':fcclock') or '0')
    if latest > now then
      now = latest
      gate.now = now
    end
  end
  -- Each queue's first claimable entries hold the first n of them all.
  local sources = {}
  local seen_all, passed_over, next_due = true, false, nil
  for j = 7 + ncaps, #args do
    local source, ended, passed, due = lane_source(base, ns, args[j], n, want, now, caps, gate)
    sources[#sources + 1] = source
    seen_all = seen_all and ended
    passed_over = passed_over or passed
    if due ~= nil and (next_due == nil or due < next_due) then
      next_due = due
    end
  end
  local worker_json = cjson.encode(worker)
  local now_text = string.format('%d', now)
  local counts = base .. ':cnt:' .. ns
  local out = {''}
  while #out - 1 < n do
    local best, best_c, best_key = nil, nil, nil
    for i, source in ipairs(sources) do
      local c, key = head(source)
      if c ~= nil and (best_c == nil or before(c, best_c)) then
        best, best_c, best_key = i, c, key
      end
    end
    if best == nil then
      break
    end
    local taken = admit(gate, best_c)
    advance(sources[best], best_key, taken)
    if taken then
      local k = #out
      local token = string.sub(tokens, 32 * (k - 1) + 1, 32 * k)
      out[#out + 1] = take(base, ns, counts, best_c, now, now_text, worker_json, token)
    else
      passed_over = true
    end
  end
  save_gate(gate)
  for _, source in ipairs(sources) do
    if source.fair ~= nil then
      redis.call('SET', source.credits_key, cjson.encode({credit = source.credits}))
    end
  end
  if #out - 1 < n and seen_all and not passed_over then
    if next_due == nil then
      out[1] = 'inf'
    else
      out[1] = string.format('%d', next_due)
    end
  end
  if gate ~= nil then
    local p = gate.passed
    out[1] = out[1] .. ';' .. p.concurrency .. ',' .. p.rate .. ',' .. p.budget
  end
  return out
end

redis.register_function('ff_v2_claim', claim)
