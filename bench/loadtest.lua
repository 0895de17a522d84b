-- loadtest.lua — the original system's load test as a wrk script (bench/loadtest.sh runs it).
--
-- Each virtual user logs in once (POST /v1/auth/login, keeps its access
-- token), then loops: list its notebooks, open one, read that notebook's
-- conversation (messages list), ask a question in it (POST, non-streamed,
-- extractive generator), search the notebook; with LOADTEST_SOURCE_EVERY = N
-- every N-th loop also adds a text source (so the job queue moves). Between
-- two requests a user thinks LOADTEST_THINK_MS ± LOADTEST_THINK_JITTER (1 s ±
-- 50 % by default; 0: a closed loop, the saturation run). Logins are spread
-- over the first LOADTEST_RAMP_S seconds.
--
-- Design: wrk's Lua API has no connection identity (request() and delay() get
-- no argument, and other connections' events interleave between a
-- response and the next request of its connection), so a user is not tied to
-- one socket: each thread has as many users as connections, each user has
-- at most one request in flight, and a response finds its user through the
-- X-Request-Id the server echoes ("vu<user>-<seq>"). delay() claims the idle
-- user whose think time ends first and waits until then; request() sends for
-- the claimed user whose wait ends first — the one whose timer fired. Every
-- latency is measured here (wall clock, ms; wrk only keeps overall stats)
-- into per-thread flat tables (wrk copies only flat tables between threads),
-- merged in done(), which writes one line per request class to LT_OUT for
-- bench/loadtest_report.py. With LT_WINDOW_S set (the soak) each thread also
-- appends its latencies to LT_OUT.w<window>.t<thread> when a window ends.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } lt_timespec;
int clock_gettime(int clk, lt_timespec *ts);
]]
local tsb = ffi.new("lt_timespec")
local function now_ms() -- CLOCK_REALTIME: windows line up with the shell's clock
	ffi.C.clock_gettime(0, tsb)
	return tonumber(tsb.tv_sec) * 1000 + tonumber(tsb.tv_nsec) / 1e6
end

local function envn(k, d) return tonumber(os.getenv(k) or "") or d end
local ENDPOINTS = { "login", "list", "open", "messages", "ask", "search", "add_source" }
local QUESTIONS = {
	"What feeds the flame of a candle?", "How does the melted wax get up the wick?",
	"Why does the bright part of the flame glow?", "What happens to water when it evaporates?",
	"How do clouds form?", "Who invented the printing press?", "How did movable type change printing?",
}
local TERMS = { "candle", "wax", "flame", "wick", "water", "clouds", "rain", "evaporation", "printing", "press", "type", "ink" }

-- main state -----------------------------------------------------------------
local threads = {}
local nthreads = 0
function setup(thread)
	thread:set("tid", nthreads)
	nthreads = nthreads + 1
	table.insert(threads, thread)
end

-- a binary min-heap of users keyed on .ready ----------------------------------
local function hpush(h, u)
	h.n = h.n + 1
	local i = h.n
	h[i] = u
	while i > 1 do
		local p = math.floor(i / 2)
		if h[p].ready <= h[i].ready then break end
		h[p], h[i] = h[i], h[p]
		i = p
	end
end
local function hpop(h)
	if h.n == 0 then return nil end
	local top = h[1]
	h[1] = h[h.n]
	h[h.n] = nil
	h.n = h.n - 1
	local i = 1
	while true do
		local l, r, m = 2 * i, 2 * i + 1, i
		if l <= h.n and h[l].ready < h[m].ready then m = l end
		if r <= h.n and h[r].ready < h[m].ready then m = r end
		if m == i then break end
		h[m], h[i] = h[i], h[m]
		i = m
	end
	return top
end

-- thread state -----------------------------------------------------------------
local users, idle, claimed = {}, { n = 0 }, { n = 0 }
local think, jitter, source_every, window_ms, t0, out
local password
local cur_window = 0
-- globals read by done(): lat_<endpoint> (flat arrays of ms), cnt ("<endpoint>:<status>" → n), tokens
cnt = {}
tokens = {}

function init(args)
	local all = dofile(os.getenv("LT_USERS_FILE"))
	local vus = envn("LOADTEST_VUS", #all)
	local per = math.floor(vus / envn("LT_THREADS", 1))
	think = envn("LOADTEST_THINK_MS", 1000)
	jitter = envn("LOADTEST_THINK_JITTER", 0.5)
	source_every = envn("LOADTEST_SOURCE_EVERY", 0)
	window_ms = envn("LT_WINDOW_S", 0) * 1000
	t0 = envn("LT_T0_MS", now_ms())
	out = os.getenv("LT_OUT")
	password = os.getenv("LOADTEST_PASSWORD")
	local ramp = envn("LOADTEST_RAMP_S", 0) * 1000
	math.randomseed(1000 + tid)
	for _, ep in ipairs(ENDPOINTS) do _G["lat_" .. ep] = {} end
	local known = {}
	local tf = os.getenv("LT_TOKENS_IN")
	if tf and tf ~= "" then
		local f = io.open(tf)
		if f then
			for line in f:lines() do
				local i, tok = line:match("^(%d+) (%S+)$")
				if i then known[tonumber(i)] = tok end
			end
			f:close()
		end
	end
	local start = now_ms()
	for i = tid * per + 1, (tid + 1) * per do
		local d = all[i]
		local u = { idx = i, email = d[1], nbs = d[2], convs = d[3], token = known[i], step = 0, seq = 0, loops = 0,
			ready = start + (known[i] and math.random() * think or math.random() * ramp) }
		if u.token then u.step = 1 end
		users[i] = u
		hpush(idle, u)
	end
end

local function think_ms()
	if think <= 0 then return 0 end
	return think * (1 - jitter + 2 * jitter * math.random())
end

function delay()
	local u = hpop(idle)
	if not u then return 100 end -- a connection without a user (see request()): not a busy loop
	hpush(claimed, u)
	local d = u.ready - now_ms()
	return d > 0 and math.floor(d) or 0
end

local function json_str(s) return '"' .. s:gsub('[%c"\\]', " ") .. '"' end

function request()
	local u = hpop(claimed)
	-- A connection wrk re-opened (the server closed it) may call request() without delay(), or delay()
	-- twice: a user not due yet is not sent early, and a connection without a user sends /healthz,
	-- which is not recorded (counted in `unpaired`; the server's idle and first-request timeouts are
	-- raised by bench/loadtest_lib.sh so that this stays rare).
	if u and u.ready > now_ms() + 20 then
		hpush(claimed, u)
		u = nil
	end
	if not u then
		cnt["unpaired:0"] = (cnt["unpaired:0"] or 0) + 1
		return wrk.format("GET", "/healthz", { ["X-Request-Id"] = "none" })
	end
	u.seq = u.seq + 1
	local h = { ["X-Request-Id"] = "vu" .. u.idx .. "-" .. u.seq }
	local method, path, body = "GET", nil, nil
	if u.step == 0 then
		u.ep, method, path = "login", "POST", "/v1/auth/login"
		body = '{"email": ' .. json_str(u.email) .. ', "password": ' .. json_str(password) .. '}'
	else
		h["Authorization"] = "Bearer " .. u.token
		if u.step == 1 then
			u.k = math.random(#u.nbs)
			u.ep, path = "list", "/v1/notebooks?limit=20"
		elseif u.step == 2 then
			u.ep, path = "open", "/v1/notebooks/" .. u.nbs[u.k]
		elseif u.step == 3 then
			u.ep, path = "messages", "/v1/conversations/" .. u.convs[u.k] .. "/messages?limit=20"
		elseif u.step == 4 then
			u.ep, method, path = "ask", "POST", "/v1/conversations/" .. u.convs[u.k] .. "/messages"
			body = '{"content": ' .. json_str(QUESTIONS[math.random(#QUESTIONS)]) .. '}'
		elseif u.step == 5 then
			u.ep, path = "search", "/v1/notebooks/" .. u.nbs[u.k] .. "/search?limit=10&q=" .. TERMS[math.random(#TERMS)]
		else
			u.ep, method, path = "add_source", "POST", "/v1/notebooks/" .. u.nbs[u.k] .. "/sources"
			body = '{"kind": "text", "title": "added by the load test", "content": ' ..
				json_str(string.rep("The flame of a candle is fed by wax vapour. ", 40)) .. '}'
		end
	end
	if body then h["Content-Type"] = "application/json" end
	u.sent = now_ms()
	return wrk.format(method, path, h, body)
end

local function flush_window(w)
	local f = io.open(out .. ".w" .. w .. ".t" .. tid, "a")
	for _, ep in ipairs(ENDPOINTS) do
		local l = _G["wlat_" .. ep]
		if l then
			for j = 1, #l, 2 do f:write(ep, " ", l[j], " ", l[j + 1], "\n") end
			_G["wlat_" .. ep] = {}
		end
	end
	f:close()
end

function response(status, headers, body)
	local rid = headers["X-Request-Id"] or headers["x-request-id"]
	local i = rid and tonumber(rid:match("^vu(%d+)%-"))
	local u = i and users[i]
	if not u or rid ~= "vu" .. u.idx .. "-" .. u.seq then return end
	local t = now_ms()
	local ms = t - u.sent
	local ep = u.ep
	local l = _G["lat_" .. ep]
	l[#l + 1] = ms
	local key = ep .. ":" .. status
	cnt[key] = (cnt[key] or 0) + 1
	if window_ms > 0 then
		local w = math.floor((t - t0) / window_ms)
		if w ~= cur_window then
			flush_window(cur_window)
			cur_window = w
		end
		local wl = _G["wlat_" .. ep]
		if not wl then wl = {}; _G["wlat_" .. ep] = wl end
		wl[#wl + 1] = string.format("%.3f", ms)
		wl[#wl + 1] = status
	end
	-- the next step
	if status == 401 and ep ~= "login" then
		u.token, u.step = nil, 0 -- token gone: log in again
	elseif ep == "login" then
		if status == 200 then
			u.token = body:match('"access_token"%s*:%s*"([^"]+)"')
			tokens[u.idx] = u.token
			u.step = u.token and 1 or 0
		end
	elseif u.step == 5 then
		u.loops = u.loops + 1
		u.step = (source_every > 0 and u.loops % source_every == 0) and 6 or 1
	elseif u.step == 6 then
		u.step = 1
	else
		u.step = u.step + 1
	end
	u.ready = t + think_ms()
	hpush(idle, u)
end

-- main state: merge the threads' tables, write LT_OUT (and the tokens for the next run)
function done(summary, latency, requests)
	local f = io.open(os.getenv("LT_OUT"), "w")
	local tf = os.getenv("LT_TOKENS_OUT")
	local tfh = tf and tf ~= "" and io.open(tf, "w")
	for _, t in ipairs(threads) do
		for _, ep in ipairs(ENDPOINTS) do
			local l = t:get("lat_" .. ep)
			if l and #l > 0 then
				local parts = {}
				for j = 1, #l do parts[j] = string.format("%.3f", l[j]) end
				f:write("lat ", ep, " ", table.concat(parts, " "), "\n")
			end
		end
		for k, n in pairs(t:get("cnt")) do f:write("cnt ", k, " ", n, "\n") end
		if tfh then
			for i, tok in pairs(t:get("tokens")) do tfh:write(i, " ", tok, "\n") end
		end
	end
	f:write(string.format("wrk %d %d %d %d %d %d\n", summary.duration, summary.requests, summary.errors.connect,
		summary.errors.read, summary.errors.write, summary.errors.timeout))
	f:close()
	if tfh then tfh:close() end
end
