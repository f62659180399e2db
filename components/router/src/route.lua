-- The router's one round trip before forwarding: look up the route of the
-- named buckets, rank their FaaS deployments by the route's policy, and
-- count the request as in flight at the first. The ranking is
-- fado_routing::select::rank over the same inputs (tests/orchestrator
-- checks the two agree); see that crate for what each policy does.
--
-- KEYS[1] fado:routes        hash bucket -> route JSON (the planner's)
-- KEYS[2] fado:routes:meta   hash version, default_policy, ...
-- KEYS[3] fado:rr            hash route -> request counter
-- KEYS[4] fado:routes:express hash bucket -> '<generation>|<route JSON>', an
--         override the catalog published as it committed; it wins while it
--         is newer than the table (meta 'generation')
-- ARGV[1] now (ms)           ARGV[2], ARGV[3] random numbers (< 2^52)
-- ARGV[4] hash key ('' none) ARGV[5] request id   ARGV[6] in-flight lease (ms)
-- ARGV[7] the (lower-case) header the buckets were read from
-- ARGV[8..] bucket names; none when the request lacks the header
--
-- Per deployment: fado:up:<id> hash (ejected_until, latency_us), and
-- fado:up:<id>:inflight zset request id -> lease deadline, so a router that
-- dies mid-request leaks nothing past the lease.
--
-- Returns {1, version, policy, route JSON, id, id, ...} (ids best first) or
-- {0, reason, detail}.

local now = tonumber(ARGV[1])
local r1, r2 = tonumber(ARGV[2]), tonumber(ARGV[3])
local key, request, lease = ARGV[4], ARGV[5], tonumber(ARGV[6])

local meta = redis.call('HMGET', KEYS[2], 'version', 'match_header', 'missing_header', 'generation')
local version = meta[1]
local planned = tonumber(meta[4] or '0') or 0
if not version then
  return {0, 'no_table', ''}
end
if string.lower(meta[2] or '') ~= ARGV[7] then
  return {0, 'match_header', meta[2] or ''}
end
if #ARGV < 8 then
  -- No bucket named: the settings say whether any deployment may serve it.
  if meta[3] ~= 'any' then
    return {0, 'missing_header', meta[2]}
  end
  ARGV[8] = '*'
end

local routes = {}
for i = 8, #ARGV do
  local json = nil
  local express = redis.call('HGET', KEYS[4], ARGV[i])
  if express then
    local sep = string.find(express, '|', 1, true)
    if sep and (tonumber(string.sub(express, 1, sep - 1)) or 0) > planned then
      json = string.sub(express, sep + 1)
    end
  end
  if not json then json = redis.call('HGET', KEYS[1], ARGV[i]) end
  if not json then
    return {0, 'unknown_bucket', ARGV[i]}
  end
  routes[#routes + 1] = json
end
-- The route JSON (serde's compact form of fado_model::BucketRoute) is
-- scanned, not decoded: only the policy and each target's id and health
-- are needed, and plain string.find (memchr) costs a fraction of
-- cjson.decode. Keys cannot appear unescaped inside JSON strings, so only
-- real fields match; every target has one of each, in the same order.
local function field(json, key, pattern, out)
  local at = 1
  while true do
    local _, stop = string.find(json, key, at, true)
    if not stop then return out end
    out[#out + 1] = string.match(json, pattern, stop + 1)
    at = stop + 1
  end
end
local function targets(json)
  return field(json, '"faas_id":', '^(%-?%d+)', {}), field(json, '"health":', '^"(%a+)"', {})
end
local first_ids, first_health = targets(routes[1])
local policy = field(routes[1], '"policy":', '^"([%w_]+)"', {})[1]
local others = {}
for i = 2, #routes do
  local held = {}
  for _, id in ipairs((targets(routes[i]))) do held[id] = true end
  others[#others + 1] = held
end

-- In-flight counts are read only by the policies that weigh them.
local counts = policy == 'least_conn' or policy == 'p2c' or policy == 'least_latency'

-- Deployments in every named route, in the first route's order.
local peers = {}
for k, id in ipairs(first_ids) do
  local everywhere = true
  for _, held in ipairs(others) do
    if not held[id] then everywhere = false end
  end
  if everywhere then
    local state = redis.call('HMGET', 'fado:up:' .. id, 'ejected_until', 'latency_us')
    peers[#peers + 1] = {
      id = id,
      -- Ejected by outlier detection, or found down by the health checker.
      available = now >= (tonumber(state[1]) or 0) and first_health[k] ~= 'unhealthy',
      latency = tonumber(state[2]) or 0,
      in_flight = counts and redis.call('ZCOUNT', 'fado:up:' .. id .. ':inflight', ARGV[1], '+inf') or 0,
    }
  end
end
if #peers == 0 then
  return {0, 'no_targets', ''}
end

local counter = redis.call('HINCRBY', KEYS[3], table.concat(ARGV, ',', 8), 1) - 1

-- Sorts `order` by weight(i), lowest first, keeping the given order among
-- equals (table.sort is not stable).
local function stable(order, weight)
  local pos = {}
  for k, i in ipairs(order) do pos[i] = k end
  local sorted = {}
  for k, i in ipairs(order) do sorted[k] = i end
  table.sort(sorted, function(a, b)
    local wa, wb = weight(a), weight(b)
    if wa ~= wb then return wa < wb end
    return pos[a] < pos[b]
  end)
  return sorted
end

local function rank()
  local live = {}
  for i, p in ipairs(peers) do
    if p.available then live[#live + 1] = i end
  end
  local n = #live
  if n == 0 then return live end
  local function rotate(from)
    local out = {}
    for k = 0, n - 1 do out[k + 1] = live[((from + k) % n) + 1] end
    return out
  end
  local rotated = rotate(counter % n)
  local function in_flight(i) return peers[i].in_flight end
  if policy == 'first' then return live end
  if policy == 'round_robin' then return rotated end
  if policy == 'random' then return rotate(r1 % n) end
  if policy == 'least_conn' then return stable(rotated, in_flight) end
  if policy == 'least_latency' then
    return stable(rotated, function(i) return peers[i].latency * (peers[i].in_flight + 1) end)
  end
  if policy == 'p2c' then
    local least = stable(rotated, in_flight)
    if n == 1 then return least end
    local a = r1 % n
    local b = r2 % (n - 1)
    if b >= a then b = b + 1 end
    a, b = live[a + 1], live[b + 1]
    local pick = a
    if peers[b].in_flight < peers[a].in_flight then pick = b end
    local out = {pick}
    for _, i in ipairs(least) do
      if i ~= pick then out[#out + 1] = i end
    end
    return out
  end
  if policy == 'ip_hash' or policy == 'header_hash' then
    if key == '' then return rotated end
    local score = {}
    for _, i in ipairs(live) do
      -- The first 52 bits of SHA-1, exact as a Lua number.
      score[i] = tonumber(string.sub(redis.sha1hex(key .. '|' .. peers[i].id), 1, 13), 16)
    end
    table.sort(live, function(a, b)
      if score[a] ~= score[b] then return score[a] > score[b] end
      return tonumber(peers[a].id) < tonumber(peers[b].id)
    end)
    return live
  end
  return rotated
end

local order = rank()
if #order == 0 then
  return {0, 'all_ejected', ''}
end
local chosen = 'fado:up:' .. peers[order[1]].id .. ':inflight'
-- Leases past their deadline are not counted (ZCOUNT starts at now); they
-- are only left by routers that died mid-request, so sweeping them now
-- and then keeps the set small.
if counter % 16 == 0 then
  redis.call('ZREMRANGEBYSCORE', chosen, '-inf', '(' .. ARGV[1])
end
redis.call('ZADD', chosen, string.format('%d', now + lease), request)
redis.call('PEXPIRE', chosen, string.format('%d', lease * 2))

local reply = {1, version, policy, routes[1]}
for _, i in ipairs(order) do reply[#reply + 1] = peers[i].id end
return reply
