-- wrk script for bench/soak.py: rotate POST bodies over several paths and report JSON.
-- SOAK_BODIES lists "url_path=body_file" pairs separated by ";"; SOAK_AUTHORIZATION, when
-- set, is every request's Authorization header.
local headers = {["Content-Type"] = "application/json"}
local authorization = os.getenv("SOAK_AUTHORIZATION")
if authorization ~= nil and authorization ~= "" then
  headers["Authorization"] = authorization
end
local requests = {}
for pair in string.gmatch(os.getenv("SOAK_BODIES"), "[^;]+") do
  local path, file_name = string.match(pair, "^(.-)=(.*)$")
  local file = assert(io.open(file_name, "rb"))
  local body = file:read("*a")
  file:close()
  requests[#requests + 1] = wrk.format("POST", path, headers, body)
end

local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("offset", counter)
end

function init(args)
  index = offset or 0
end

function request()
  index = index + 1
  return requests[(index % #requests) + 1]
end

function done(summary, latency, requests_stats)
  local errors = summary.errors
  io.write(string.format(
    'SOAK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, '
      .. '"p999_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout, latency:percentile(50),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
