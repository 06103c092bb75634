-- ff_v2_apply: one transition, checked and written atomically. The rules
-- ran in Rust against the versions read; this call writes their result
-- only if nothing it read has changed since.
--
-- KEYS[1]  the partition's key base; every key named in ARGV starts with it,
--          so all share one hash slot.
-- ARGV[1]  now (epoch ms), the commit time of new outbox entries
-- ARGV[2]  the completions channel
-- ARGV[3]  the partition number
-- ARGV[4]  c, how many of the following arguments are checks
-- ARGV[5 .. 4+c]  checks, all made before anything is written:
--   V key version     the hash's `_v` equals version ('0': the hash is absent)
--   D seq             outbox entry seq is still undispatched
--   F hash field      field is absent from hash
-- ARGV[5+c ..]  writes, in order:
--   H key version n f1 v1 .. fn vn   HSET the fields, and `_v` to version
--   Z key score member               ZADD
--   R key member                     ZREM
--   C hash field delta               HINCRBY, the field removed at 0
--   S hash field value               HSET
--   U hash field                     HDEL
--   K key                            DEL
--   M key ms                         SET to ms unless it holds a later time
--   O body                           a new outbox entry: stream entry,
--                                    undispatched mark, PUBLISH
--   X seq                            mark an outbox entry dispatched
--   P channel message                PUBLISH
--   W hash field channel message     PUBLISH if HDEL removed the field
-- Returns {'ok', seq...} (the new outbox seqs) or {'conflict', what}.
local function apply(keys, args)
  local base = keys[1]
  local now = args[1]
  local channel = args[2]
  local partition = args[3]
  local checks_end = 4 + tonumber(args[4])
  local i = 5
  while i <= checks_end do
    local op = args[i]
    if op == 'V' then
      local v = redis.call('HGET', args[i + 1], '_v') or '0'
      if v ~= args[i + 2] then
        return {'conflict', args[i + 1]}
      end
      i = i + 3
    elseif op == 'D' then
      if not redis.call('ZSCORE', base .. ':obu', args[i + 1]) then
        return {'conflict', 'outbox ' .. args[i + 1]}
      end
      i = i + 2
    elseif op == 'F' then
      if redis.call('HEXISTS', args[i + 1], args[i + 2]) == 1 then
        return {'conflict', args[i + 1] .. ' ' .. args[i + 2]}
      end
      i = i + 3
    else
      return redis.error_reply('ERR flowfabric: unknown check ' .. tostring(op))
    end
  end
  local out = {'ok'}
  while i <= #args do
    local op = args[i]
    if op == 'H' then
      local key = args[i + 1]
      local n = tonumber(args[i + 3])
      local fields = {'_v', args[i + 2]}
      for j = 1, 2 * n do
        fields[#fields + 1] = args[i + 3 + j]
      end
      redis.call('HSET', key, unpack(fields))
      i = i + 4 + 2 * n
    elseif op == 'Z' then
      redis.call('ZADD', args[i + 1], args[i + 2], args[i + 3])
      i = i + 4
    elseif op == 'R' then
      redis.call('ZREM', args[i + 1], args[i + 2])
      i = i + 3
    elseif op == 'C' then
      if redis.call('HINCRBY', args[i + 1], args[i + 2], args[i + 3]) <= 0 then
        redis.call('HDEL', args[i + 1], args[i + 2])
      end
      i = i + 4
    elseif op == 'S' then
      redis.call('HSET', args[i + 1], args[i + 2], args[i + 3])
      i = i + 4
    elseif op == 'U' then
      redis.call('HDEL', args[i + 1], args[i + 2])
      i = i + 3
    elseif op == 'M' then
      local at = tonumber(redis.call('GET', args[i + 1]) or '0')
      if tonumber(args[i + 2]) > at then
        redis.call('SET', args[i + 1], args[i + 2])
      end
      i = i + 3
    elseif op == 'K' then
      redis.call('DEL', args[i + 1])
      i = i + 2
    elseif op == 'O' then
      local seq = redis.call('INCR', base .. ':obseq')
      local body = args[i + 1]
      redis.call('XADD', base .. ':ob', seq .. '-0', 'c', now, 'b', body)
      redis.call('ZADD', base .. ':obu', now, seq)
      redis.call('PUBLISH', channel, partition .. '|' .. seq .. '|' .. body)
      out[#out + 1] = seq
      i = i + 2
    elseif op == 'X' then
      redis.call('ZREM', base .. ':obu', args[i + 1])
      redis.call('ZADD', base .. ':obd', now, args[i + 1])
      i = i + 2
    elseif op == 'P' then
      redis.call('PUBLISH', args[i + 1], args[i + 2])
      i = i + 3
    elseif op == 'W' then
      if redis.call('HDEL', args[i + 1], args[i + 2]) == 1 then
        redis.call('PUBLISH', args[i + 3], args[i + 4])
      end
      i = i + 5
    else
      return redis.error_reply('ERR flowfabric: unknown write ' .. tostring(op))
    end
  end
  return out
end

redis.register_function('ff_v2_apply', apply)
