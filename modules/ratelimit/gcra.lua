-- gcra.lua: GCRA decisions for one or more token buckets, atomically, on
-- Redis's own clock. It repeats exactly the maths of bucket.take in gcra.go.
--
-- A bucket is a key holding its theoretical arrival time (tat): integer
-- microseconds since the Unix epoch at which the bucket is full again.
--
--   KEYS[i]      the bucket's key
--   ARGV[3i-2]   interval: microseconds per token
--   ARGV[3i-1]   tolerance: microseconds, interval x burst
--   ARGV[3i]     n: tokens asked for (the requests coalesced for the key)
--
-- Returns {granted_1, reset_1, granted_2, reset_2, ...}: how many of the n
-- tokens were granted (the first granted requests are allowed, the rest
-- denied), and the new tat minus now in microseconds (the time until the
-- bucket is full again; 0 for a full bucket).
--
-- The stored tat never moves backwards. A key is written only when a token
-- is granted, and expires when its bucket is full again, so an idle client
-- costs Redis nothing. Every number stays below 2^53, where Lua's doubles are
-- exact, while a bucket fills in less than about 200 years.

if redis.replicate_commands then
  redis.replicate_commands() -- before Redis 5: allow writes after TIME
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

-- idiv is floor(a / b) for integers a >= 0 and b > 0, exact even where the
-- double quotient rounds to the next integer.
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

local out = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 2])
  local tolerance = tonumber(ARGV[3 * i - 1])
  local n = tonumber(ARGV[3 * i])
  -- A missing key (GET gives false) or a tat in the past is a full bucket.
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then
    tat = now
  end
  local granted = 0
  local room = now + tolerance - tat
  if room > 0 then
    granted = math.min(n, idiv(room, interval))
  end
  local newtat = tat + granted * interval
  if granted > 0 then
    -- Expire exactly when the bucket is full again, rounded up to the ms.
    local ttl = idiv(newtat - now + 999, 1000)
    redis.call('SET', key, string.format('%d', newtat), 'PX', string.format('%d', ttl))
  end
  out[2 * i - 1] = granted
  out[2 * i] = newtat - now
end
return out
