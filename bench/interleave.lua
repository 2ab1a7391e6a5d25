-- wrk script for `compare_builds.py --interleaved`: requests alternate between the
-- paths of BENCH_PATHS (comma-separated, e.g. "/a/hello,/b/hello"), one after the
-- other across all connections, plus report.lua's summary.

local paths = {}
for path in string.gmatch(os.getenv("BENCH_PATHS") or "/", "[^,]+") do
  paths[#paths + 1] = path
end
local next_index = 0

request = function()
  next_index = next_index % #paths + 1
  return wrk.format("GET", paths[next_index])
end

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
