-- versioned: the generation a list page is built under (`pages.rs`).
--
-- KEYS[1]  the scope's generation   <prefix>:{pages:<scope>}:gen
-- ARGV[1]  a token no other generation uses, set when none is stored
-- ARGV[2]  its TTL in seconds (a lost generation only ends the pages stored under it)
--
-- Returns the stored generation. Read before Postgres is: every publish of a product the scope
-- lists replaces it (after its commit), so a page stored under it later (`store_page.lua`) was
-- read from a snapshot that has every change published before the store.
local generation = redis.call('GET', KEYS[1])
if generation then
  return generation
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return ARGV[1]
