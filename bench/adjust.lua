-- Stock adjustments (+1) on product ids spread over 1..PRODUCTS.
-- wrk -s bench/adjust.lua URL -- PRODUCTS TOKEN
local products, token = 10000, ""
function init(args)
  products = tonumber(args[1] or products)
  token = args[2] or ""
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
  return wrk.format("POST", "/v1/products/" .. math.random(1, products) .. "/stock/adjustments",
    headers, '{"delta": 1}')
end
