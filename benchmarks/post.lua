-- wrk script: POST a fixed body read from a file, and print a JSON summary line at the end.
-- usage: wrk -s benchmarks/post.lua URL -- BODY_FILE [CONTENT_TYPE ["Name: value" ...]]
-- (extra headers, e.g. the OIP binary extension's Inference-Header-Content-Length)
local body_file = nil
local content_type = "application/json"

function init(args)
  body_file = args[1]
  if args[2] ~= nil then
    content_type = args[2]
  end
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*all")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = content_type
  for i = 3, #args do
    local name, value = string.match(args[i], "^([^:]+):%s*(.*)$")
    if name ~= nil then
      wrk.headers[name] = value
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
    "\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d, " ..
    "\"p50_us\": %d, \"p90_us\": %d, \"p99_us\": %d, \"max_us\": %d, \"mean_us\": %.1f}\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
