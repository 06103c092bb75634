-- ff_v1_claim: claims up to n executions of the given lanes in one
-- partition, in claim order (priority, higher first, then ready_at, then
-- id), exactly as `ff_core::lease::claim` does: a new attempt unless the
-- last lease was released, a new lease epoch, the lease and attempt
-- deadlines from now, the worker, and a new attempt record.
--
-- KEYS[1]  the partition's key base
-- ARGV     now, worker_id, n, namespace, k, k capabilities, lanes...
-- Returns {hint, claimed...}: each claimed execution as HGETALL answers it,
-- after the claim. hint says when a claim here can next find work when
-- this one found less than n: '' when it cannot tell (keep asking), 'inf'
-- when the lanes hold nothing, else the epoch ms of the earliest due entry.
local function field_number(v)
  if v == nil or v == 'null' then
    return nil
  end
  return tonumber(v)
end

local function claim(keys, args)
  local base = keys[1]
  local now = tonumber(args[1])
  local worker = args[2]
  local n = tonumber(args[3])
  local ns = args[4]
  local ncaps = tonumber(args[5])
  local caps = {}
  for j = 1, ncaps do
    caps[args[5 + j]] = true
  end
  -- Each lane's first entries: enough for n after a few passed over. A
  -- lane answering a full window may hold more (scanned_all is then false).
  local window = n + 32
  local scanned_all = true
  local ids, scores, lane_of, queue_of = {}, {}, {}, {}
  local lanes = 0
  for j = 6 + ncaps, #args do
    local lane = args[j]
    local queue = base .. ':q:' .. ns .. ':' .. lane
    local got = redis.call('ZRANGE', queue, 0, window - 1, 'WITHSCORES')
    if #got >= 2 * window then
      scanned_all = false
    end
    for k = 1, #got, 2 do
      local at = #ids + 1
      ids[at] = got[k]
      scores[at] = tonumber(got[k + 1])
      lane_of[at] = lane
      queue_of[at] = queue
    end
    lanes = lanes + 1
  end
  -- One lane comes sorted already; several are merged.
  local order = {}
  for k = 1, #ids do
    order[k] = k
  end
  if lanes > 1 then
    table.sort(order, function(a, b)
      if scores[a] ~= scores[b] then
        return scores[a] < scores[b]
      end
      return ids[a] < ids[b]
    end)
  end
  local worker_json = cjson.encode(worker)
  local now_text = string.format('%d', now)
  local counts = base .. ':cnt:' .. ns
  local out = {''}
  local taken = 0
  local passed_over = false
  local next_due = nil
  for _, at in ipairs(order) do
    if taken >= n then
      break
    end
    local id, lane, queue = ids[at], lane_of[at], queue_of[at]
    local key = base .. ':e:' .. id
    local flat = redis.call('HGETALL', key)
    local f = {}
    for k = 1, #flat, 2 do
      f[flat[k]] = k + 1
    end
    local function get(name)
      local at = f[name]
      if at then
        return flat[at]
      end
      return nil
    end
    local state = get('state')
    local ready_at = field_number(get('ready_at'))
    local deadline = field_number(get('deadline'))
    local fits = true
    if state ~= '"ready"' and state ~= '"scheduled"' then
      fits = false
      passed_over = true
    elseif ready_at > now then
      fits = false
      if next_due == nil or ready_at < next_due then
        next_due = ready_at
      end
    elseif deadline ~= nil and deadline <= now then
      fits = false
      passed_over = true
    else
      for cap in string.gmatch(get('capabilities') or '', '"([^"]+)"') do
        if not caps[cap] then
          fits = false
        end
      end
      if not fits then
        passed_over = true
      end
    end
    if fits then
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
        local at = f[changes[k]]
        if at then
          flat[at] = changes[k + 1]
        else
          flat[#flat + 1] = changes[k]
          flat[#flat + 1] = changes[k + 1]
        end
      end
      redis.call('ZREM', queue, id)
      if state == '"scheduled"' then
        redis.call('ZREM', base .. ':sched', id)
      end
      redis.call('ZADD', base .. ':run', expires, id)
      local was = lane .. '\n' .. string.sub(state, 2, -2)
      if redis.call('HINCRBY', counts, was, -1) <= 0 then
        redis.call('HDEL', counts, was)
      end
      redis.call('HINCRBY', counts, lane .. '\nrunning', 1)
      out[#out + 1] = flat
      taken = taken + 1
    end
  end
  if taken < n and scanned_all and not passed_over then
    if next_due == nil then
      out[1] = 'inf'
    else
      out[1] = string.format('%d', next_due)
    end
  end
  return out
end

redis.register_function('ff_v1_claim', claim)
