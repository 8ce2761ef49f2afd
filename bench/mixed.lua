-- A shop's mix over product ids 1..PRODUCTS: 90% product reads, 7% stock adjustments (+1),
-- 3% catalog pages. wrk -s bench/mixed.lua URL -- PRODUCTS TOKEN
local products, token = 10000, ""
function init(args)
  products = tonumber(args[1] or products)
  token = args[2] or ""
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  local dice = math.random(1, 100)
  local id = math.random(1, products)
  if dice <= 90 then
    return wrk.format("GET", "/v1/products/" .. id)
  elseif dice <= 97 then
    local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
    return wrk.format("POST", "/v1/products/" .. id .. "/stock/adjustments", headers, '{"delta": 1}')
  else
    return wrk.format("GET", "/v1/products?limit=50&after=" .. (id - 1))
  end
end
