-- wrk script for `make bench`: POST a body of BENCH_UPLOAD_BYTES bytes
-- (default 10 MiB), built once per wrk thread with string.rep, to the URL
-- given to wrk (the /upload page, which reads it all and answers its length).

local size = tonumber(os.getenv("BENCH_UPLOAD_BYTES") or "") or 10 * 1024 * 1024
wrk.method = "POST"
wrk.body = string.rep("x", size)
wrk.headers["Content-Type"] = "application/octet-stream"

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
