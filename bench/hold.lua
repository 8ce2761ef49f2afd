-- Holds of one unit of one product, for an hour: shoppers checking out a flash sale.
-- wrk -s bench/hold.lua URL -- PRODUCT
local body
function init(args)
  body = '{"items": [{"product_id": ' .. tonumber(args[1]) .. ', "quantity": 1}], "ttl_seconds": 3600}'
end
function request()
  return wrk.format("POST", "/v1/holds", { ["Content-Type"] = "application/json" }, body)
end
