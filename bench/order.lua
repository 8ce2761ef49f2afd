-- Orders of one unit of a product spread over 1..PRODUCTS.
-- wrk -s bench/order.lua URL -- PRODUCTS
local products = 10000
function init(args)
  products = tonumber(args[1] or products)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  local body = '{"items": [{"product_id": ' .. math.random(1, products) .. ', "quantity": 1}]}'
  return wrk.format("POST", "/v1/orders", { ["Content-Type"] = "application/json" }, body)
end
