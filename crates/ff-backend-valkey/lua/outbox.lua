-- ff_v2_undispatched: outbox entries not yet dispatched that committed at
-- or before a cutoff, oldest first.
-- KEYS[1]  the partition's key base
-- ARGV     cutoff (epoch ms), limit
-- Returns {seq, body, seq, body, ...}.
local function undispatched(keys, args)
  local base = keys[1]
  local seqs = redis.call('ZRANGEBYSCORE', base .. ':obu', '-inf', args[1], 'LIMIT', 0, args[2])
  local out = {}
  for _, seq in ipairs(seqs) do
    local entry = redis.call('XRANGE', base .. ':ob', seq .. '-0', seq .. '-0')
    if entry[1] then
      local fields = entry[1][2]
      for k = 1, #fields, 2 do
        if fields[k] == 'b' then
          out[#out + 1] = seq
          out[#out + 1] = fields[k + 1]
        end
      end
    end
  end
  return out
end

-- ff_v2_trim: deletes dispatched outbox entries that committed at or before
-- a cutoff, oldest first.
-- KEYS[1]  the partition's key base
-- ARGV     cutoff (epoch ms), limit
-- Returns how many it deleted.
local function trim(keys, args)
  local base = keys[1]
  local seqs = redis.call('ZRANGEBYSCORE', base .. ':obd', '-inf', args[1], 'LIMIT', 0, args[2])
  for _, seq in ipairs(seqs) do
    redis.call('XDEL', base .. ':ob', seq .. '-0')
    redis.call('ZREM', base .. ':obd', seq)
  end
  return #seqs
end

-- ff_v2_dispatch: claims outbox entries of solo executions (nothing to
-- cascade into): each is marked dispatched if it was not yet.
-- KEYS[1]  the partition's key base
-- ARGV     now (epoch ms), seq...
-- Returns, per seq, 1 when this call dispatched it, 0 when it already was
-- (or is unknown).
local function dispatch(keys, args)
  local base = keys[1]
  local out = {}
  for j = 2, #args do
    if redis.call('ZREM', base .. ':obu', args[j]) == 1 then
      redis.call('ZADD', base .. ':obd', args[1], args[j])
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  end
  return out
end

-- ff_v2_version: the library's version, checked at connect.
-- KEYS: none. ARGV: none. Returns the version number.
local function version(keys, args)
  return 2
end

redis.register_function{function_name = 'ff_v2_undispatched', callback = undispatched,
  flags = {'no-writes'}}
redis.register_function('ff_v2_trim', trim)
redis.register_function('ff_v2_dispatch', dispatch)
redis.register_function{function_name = 'ff_v2_version', callback = version,
  flags = {'no-writes'}}
