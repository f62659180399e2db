-- The router's round trip after a response (or a failure) at one
-- deployment: it is no longer in flight there; its peak-EWMA latency and
-- outlier record take the outcome (fado_routing::latency::observe and
-- fado_routing::outlier::record, over the same inputs); metrics count it.
--
-- KEYS[1] fado:router:metrics  hash of counters (see the catalog's /api/metrics)
-- ARGV[1] deployment id   ARGV[2] request id   ARGV[3] '1' failed, '0' not
-- ARGV[4] response time (us; '' when none, e.g. refused)   ARGV[5] now (ms)
-- ARGV[6] consecutive failures that eject   ARGV[7] base ejection (ms)
-- ARGV[8] longest ejection (ms)   ARGV[9] EWMA decay (ms)
-- ARGV[10] metrics label (buckets|deployment)   ARGV[11] histogram bucket
-- ARGV[12] deployment name
--
-- Returns the time the deployment is ejected until when this outcome
-- ejected it, else 0.

local id, request, failed = ARGV[1], ARGV[2], ARGV[3] == '1'
local rtt, now = tonumber(ARGV[4]), tonumber(ARGV[5])
local threshold, base, cap = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local decay = tonumber(ARGV[9])
local up = 'fado:up:' .. id
redis.call('ZREM', up .. ':inflight', request)

local s = redis.call('HMGET', up, 'latency_us', 'latency_at', 'consecutive', 'ejections', 'ejected_until')
local latency, latency_at = tonumber(s[1]), tonumber(s[2]) or 0
local consecutive, ejections = tonumber(s[3]) or 0, tonumber(s[4]) or 0
local ejected_until = tonumber(s[5]) or 0
-- One HSET of what changed (each redis.call costs more than the Lua
-- around it; a success at a healthy deployment changes only the latency).
local changed = {}

if rtt then
  if not latency or rtt > latency then
    latency = rtt
  else
    local dt = now - latency_at
    if dt < 0 then dt = 0 end
    local w = math.exp(-dt / decay)
    latency = latency * w + rtt * (1 - w)
  end
  if now > latency_at then latency_at = now end
  changed[#changed + 1] = 'latency_us'
  changed[#changed + 1] = string.format('%.3f', latency)
  changed[#changed + 1] = 'latency_at'
  changed[#changed + 1] = string.format('%d', latency_at)
end

local ejected = 0
if now >= ejected_until then
  local was = {consecutive, ejections}
  if ejections > 0 and now >= ejected_until + cap then ejections = 0 end
  if not failed then
    consecutive = 0
  else
    consecutive = consecutive + 1
    if consecutive >= math.max(threshold, 1) then
      consecutive = 0
      ejections = ejections + 1
      ejected_until = now + math.min(base * ejections, cap)
      ejected = ejected_until
    end
  end
  -- (also written once when the record is new, so it shows in Redis)
  if consecutive ~= was[1] or ejections ~= was[2] or not s[3] then
    changed[#changed + 1] = 'consecutive'
    changed[#changed + 1] = consecutive
    changed[#changed + 1] = 'ejections'
    changed[#changed + 1] = ejections
    changed[#changed + 1] = 'ejected_until'
    changed[#changed + 1] = string.format('%d', ejected_until)
  end
end
if #changed > 0 then
  redis.call('HSET', up, unpack(changed))
end

local label = ARGV[10]
redis.call('HINCRBY', KEYS[1], 'requests|' .. label, 1)
if failed then redis.call('HINCRBY', KEYS[1], 'errors|' .. label, 1) end
if ejected > 0 then redis.call('HINCRBY', KEYS[1], 'ejections|' .. ARGV[12], 1) end
if rtt then
  redis.call('HINCRBY', KEYS[1], 'latency|' .. label .. '|' .. ARGV[11], 1)
  -- Whole microseconds: HINCRBYFLOAT costs several times HINCRBY.
  redis.call('HINCRBY', KEYS[1], 'latency_sum_us|' .. label, string.format('%d', rtt))
end
return ejected
