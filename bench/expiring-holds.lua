-- Holds of one unit of one product that lapse together: each asks for the whole seconds left
-- until LAPSE (a Unix time) less one, which shopnow rounds up to a whole second: LAPSE, or
-- LAPSE + 1 for a request that took long to arrive.
-- wrk -s bench/expiring-holds.lua URL -- PRODUCT LAPSE
local body_of
function init(args)
  local product, lapse = tonumber(args[1]), tonumber(args[2])
  body_of = function()
    local ttl = math.max(1, lapse - os.time() - 1)
    return '{"items": [{"product_id": ' .. product .. ', "quantity": 1}], "ttl_seconds": ' .. ttl .. '}'
  end
end
function request()
  return wrk.format("POST", "/v1/holds", { ["Content-Type"] = "application/json" }, body_of())
end
