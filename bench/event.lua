-- wrk script for bench/ingest.py: POST /api/event like the Zeef tracker does.
--
--   wrk -t1 -c64 -d12s -s bench/event.lua http://127.0.0.1:PORT/api/event -- SEND_SECONDS [AGENTS]
--
-- Every request carries a fresh public-looking X-Forwarded-For, so Zeef sees
-- many distinct visitors (run Zeef with ZEEF_TRUSTED_PROXIES=127.0.0.1 so it
-- believes the header), and one browser User-Agent; or, given AGENTS (a Lua
-- file bench/ingest.py writes: a list of {user_agent, is_bot} pairs drawn
-- from real traffic plus a share of crawlers), the next pair of that list,
-- counting the bots it sent (sent_bots) to compare with what Zeef dropped.
--
-- Requests are only sent for SEND_SECONDS; after that each connection waits
-- for its in-flight response and then parks (see delay()), so that when wrk
-- stops at -d every request the server saw has been answered and counted.
-- Without that, up to one request per connection (64 by default) would be
-- stored by the server but never counted here, and the stored == accepted
-- check could not be exact.
--
-- done() prints one machine-readable line, "ZEEF_BENCH key=value ...".

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } zeef_timespec;
int clock_gettime(int clk_id, zeef_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local ts = ffi.new("zeef_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local BODY = '{"n":"pageview","u":"https://bench.example/page","d":"bench.example","r":null}'

-- The single-UA run: one Chrome on Windows, so every parse is a cache hit.
local SINGLE_AGENT = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  false,
}

-- First octets of ordinary allocated unicast space (RIPE/ARIN blocks); none
-- is private, loopback, CGNAT, link-local, documentation or multicast, so a
-- server that ignores non-public client addresses still takes them.
local FIRST_OCTETS = { 23, 31, 37, 46, 62, 77, 81, 89, 91, 94, 95, 109, 176, 178, 185, 188, 212, 213, 217 }

-- Main Lua state: remember the threads so done() can sum their counters.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

-- Per-thread state (each wrk thread has its own Lua state).
function init(args)
  -- args[0] is the URL; then the send window and, optionally, the AGENTS file.
  local send_seconds = tonumber(args[1]) or 10
  agents = { SINGLE_AGENT }
  if args[2] then
    agents = dofile(args[2])
  end
  deadline = now() + send_seconds
  math.randomseed(7919 * (tid + 1))
  headers = { ["Content-Type"] = "text/plain" }
  -- Each thread starts at its own place in the list, so threads do not send in step.
  n_ua = (tid * 7919) % #agents
  sent_bots = 0
  responses = 0
  accepted = 0
  dropped = 0
  other_2xx = 0
  non_2xx = 0
  parked = 0
  drop_reason = ""
  non_2xx_sample = ""
end

function request()
  n_ua = n_ua % #agents + 1
  local agent = agents[n_ua]
  headers["User-Agent"] = agent[1]
  if agent[2] then
    sent_bots = sent_bots + 1
  end
  headers["X-Forwarded-For"] = string.format(
    "%d.%d.%d.%d",
    FIRST_OCTETS[math.random(#FIRST_OCTETS)],
    math.random(0, 255),
    math.random(0, 255),
    math.random(1, 254)
  )
  return wrk.format("POST", nil, headers, BODY)
end

-- Called before each request after the first on a connection: 0 ms while
-- the send window is open, then park the connection for an hour (wrk's -d
-- ends the run long before), so nothing is in flight when wrk stops.
function delay()
  if now() < deadline then
    return 0
  end
  parked = parked + 1
  return 3600000
end

function response(status, hdrs, body)
  responses = responses + 1
  if status >= 200 and status < 300 then
    local reason = nil
    for k, v in pairs(hdrs) do
      if string.lower(k) == "x-zeef-drop" then
        reason = v
        break
      end
    end
    if reason ~= nil then
      dropped = dropped + 1
      if drop_reason == "" then
        drop_reason = reason
      end
    elseif status == 202 then
      accepted = accepted + 1
    else
      other_2xx = other_2xx + 1
    end
  else
    non_2xx = non_2xx + 1
    if non_2xx_sample == "" then
      non_2xx_sample = tostring(status) .. ":" .. string.sub(body or "", 1, 80)
    end
  end
end

local function clean(s)
  -- Keep the key=value line parseable: no spaces or newlines in values.
  return (string.gsub(s, "[%s=]", "_"))
end

function done(summary, latency, requests)
  local t = {
    responses = 0,
    accepted = 0,
    dropped = 0,
    other_2xx = 0,
    non_2xx = 0,
    parked = 0,
    sent_bots = 0,
  }
  local reason, sample = "", ""
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do
      t[k] = t[k] + (thread:get(k) or 0)
    end
    if reason == "" then
      reason = thread:get("drop_reason") or ""
    end
    if sample == "" then
      sample = thread:get("non_2xx_sample") or ""
    end
  end
  local e = summary.errors
  io.write(
    string.format(
      "ZEEF_BENCH responses=%d accepted=%d dropped=%d other_2xx=%d non_2xx=%d parked=%d sent_bots=%d"
        .. " err_connect=%d err_read=%d err_write=%d err_timeout=%d"
        .. " p50_us=%d p99_us=%d drop_reason=%s non_2xx_sample=%s\n",
      t.responses,
      t.accepted,
      t.dropped,
      t.other_2xx,
      t.non_2xx,
      t.parked,
      t.sent_bots,
      e.connect,
      e.read,
      e.write,
      e.timeout,
      latency:percentile(50),
      latency:percentile(99),
      clean(reason ~= "" and reason or "-"),
      clean(sample ~= "" and sample or "-")
    )
  )
end
