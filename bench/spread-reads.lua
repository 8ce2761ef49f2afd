-- Reads of product ids spread uniformly over 1..PRODUCTS (wrk -s bench/hot.lua ... -- PRODUCTS).
local products = 10000
function init(args)
  products = tonumber(args[1] or products)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  return wrk.format("GET", "/v1/products/" .. math.random(1, products))
end
