-- Every kind of write, in turn, of ONE product (or of products spread over 1..N): a hold of
-- one unit, an order from a hold this thread made, a plain order of one unit, an adjustment
-- of +1. A flash sale's checkout with the shop restocking meanwhile.
-- wrk -s bench/hot-writes.lua URL -- PRODUCT TOKEN [SPREAD]
-- With SPREAD > 0, each write picks a product in 1..SPREAD instead of PRODUCT.
-- At the end it prints what was acknowledged: `acknowledged: holds=H orders=O adjustments=A`.
local product, token, spread = 1, "", 0
local holds = {}
local n = 0
local counts = { holds = 0, orders = 0, adjustments = 0 }
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  product = tonumber(args[1])
  token = args[2] or ""
  spread = tonumber(args[3] or "0")
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

local function pick()
  if spread > 0 then return math.random(1, spread) end
  return product
end

local function json(body, auth)
  local headers = { ["Content-Type"] = "application/json" }
  if auth then headers["Authorization"] = "Bearer " .. auth end
  return headers, body
end

function request()
  n = n + 1
  local kind = n % 4
  if kind == 1 and #holds > 0 then
    local hold = table.remove(holds, 1)
    local headers, body = json('{"hold_id": "' .. hold.id .. '"}', hold.token)
    return wrk.format("POST", "/v1/orders", headers, body)
  elseif kind == 2 or kind == 1 then
    local headers, body = json('{"items": [{"product_id": ' .. pick() .. ', "quantity": 1}]}')
    return wrk.format("POST", "/v1/orders", headers, body)
  elseif kind == 3 then
    local headers, body = json('{"delta": 1}', token)
    return wrk.format("POST", "/v1/products/" .. pick() .. "/stock/adjustments", headers, body)
  end
  local headers, body = json('{"items": [{"product_id": ' .. pick() .. ', "quantity": 1}], "ttl_seconds": 600}')
  return wrk.format("POST", "/v1/holds", headers, body)
end

function response(status, headers, body)
  if status == 201 and body:find('"expires_at"', 1, true) then
    counts.holds = counts.holds + 1
    table.insert(holds, {
      id = body:match('"id"%s*:%s*"([^"]+)"'),
      token = body:match('"access_token"%s*:%s*"([^"]+)"'),
    })
  elseif status == 201 then
    counts.orders = counts.orders + 1
  elseif status == 200 then
    counts.adjustments = counts.adjustments + 1
  end
  wrk.thread:set("holds", counts.holds)
  wrk.thread:set("orders", counts.orders)
  wrk.thread:set("adjustments", counts.adjustments)
end

function done(summary, latency, requests)
  local total = { holds = 0, orders = 0, adjustments = 0 }
  for _, thread in ipairs(threads) do
    for key in pairs(total) do total[key] = total[key] + (thread:get(key) or 0) end
  end
  io.write(string.format("acknowledged: holds=%d orders=%d adjustments=%d\n",
    total.holds, total.orders, total.adjustments))
end
