-- wrk script for bench/soak.sh: cycles through the tutorial's three kinds
-- of request and checks every answer.
--
-- wrk runs one Lua state per thread, shared by that thread's connections,
-- so an answer cannot be matched to its request. Instead:
--   * a 200 must be the echo's JSON for /anything/key or /anything/cookie
--     (a 200 for /anything/anon means the anonymous consumer got through);
--   * a 403 must be {"message":"Forbidden"}, and at the end there may not be
--     more 403s than anonymous requests sent (one in-flight request per
--     connection may be left unanswered when wrk stops);
--   * any other status is unexpected.

local cookie = os.getenv("SOAK_COOKIE") or ""
-- Which kinds to send, e.g. "cookie,anon" to leave out the key logins
-- (each of which stores a new `storage: kong` session row).
local mix = os.getenv("SOAK_MIX") or "key,cookie,anon"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  sent = { key = 0, cookie = 0, anon = 0 }
  got = { key = 0, cookie = 0, forbidden = 0, other = 0, bad_body = 0 }
  statuses = {}
  turn = 0
  local all = {
    key = wrk.format("GET", "/anything/key", { ["apikey"] = "hello_world" }),
    cookie = wrk.format("GET", "/anything/cookie", { ["Cookie"] = cookie }),
    anon = wrk.format("GET", "/anything/anon", {}),
  }
  requests = {}
  kinds = {}
  for kind in mix:gmatch("[a-z]+") do
    table.insert(kinds, kind)
    table.insert(requests, all[kind])
  end
end

function request()
  turn = turn % #kinds + 1
  sent[kinds[turn]] = sent[kinds[turn]] + 1
  return requests[turn]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 then
    if body:find('"path":"/anything/key"', 1, true) then
      got.key = got.key + 1
    elseif body:find('"path":"/anything/cookie"', 1, true) then
      got.cookie = got.cookie + 1
    else
      got.bad_body = got.bad_body + 1
    end
  elseif status == 403 then
    if body == '{"message":"Forbidden"}' then
      got.forbidden = got.forbidden + 1
    else
      got.bad_body = got.bad_body + 1
    end
  else
    got.other = got.other + 1
  end
end

function done(summary, latency, requests)
  local total_sent = { key = 0, cookie = 0, anon = 0 }
  local total_got = { key = 0, cookie = 0, forbidden = 0, other = 0, bad_body = 0 }
  local all_statuses = {}
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("sent")) do total_sent[k] = total_sent[k] + v end
    for k, v in pairs(thread:get("got")) do total_got[k] = total_got[k] + v end
    for k, v in pairs(thread:get("statuses")) do all_statuses[k] = (all_statuses[k] or 0) + v end
  end
  io.write("statuses:")
  for status, count in pairs(all_statuses) do io.write(string.format(" %d=%d", status, count)) end
  io.write("\n")
  io.write(string.format("key:    sent %d, 200 from the echo %d\n", total_sent.key, total_got.key))
  io.write(string.format("cookie: sent %d, 200 from the echo %d\n", total_sent.cookie, total_got.cookie))
  io.write(string.format("anon:   sent %d, 403 Forbidden %d\n", total_sent.anon, total_got.forbidden))
  local extra_forbidden = math.max(0, total_got.forbidden - total_sent.anon)
  local unexpected = total_got.other + total_got.bad_body + extra_forbidden
  -- Requests that got no answer before wrk stopped: at most one per connection.
  local unanswered = (total_sent.key + total_sent.cookie + total_sent.anon) - summary.requests
  io.write(string.format("unanswered when wrk stopped: %d\n", unanswered))
  io.write(string.format("unexpected: %d\n", unexpected))
end
