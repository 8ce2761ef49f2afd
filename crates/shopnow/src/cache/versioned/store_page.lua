-- versioned: store a list page read from Postgres, under the generation read before it.
--
-- KEYS[1]  the scope's generation   <prefix>:{pages:<scope>}:gen
-- KEYS[2]  the page                 <prefix>:{pages:<scope>}:<fingerprint>
-- ARGV[1]  the generation `page_generation.lua` gave before Postgres was read
-- ARGV[2]  the page (`StoredPage`, JSON)
-- ARGV[3]  TTL in seconds
--
-- Returns 1 when stored, 0 when refused: a publish since replaced the generation (the page may
-- miss its change), or Redis lost it (and with it, perhaps, such a publish).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
