-- @noindex
-- StepEdit transports: how the scripts talk to the engine. Two kinds, one interface:
-- OSC over UDP when LuaSocket loads (the "Mavriq Lua Sockets" package), else the engine's
-- `stepedit send` client started with ExecProcess, then the job's status file is polled.
-- A remote engine (settings.remote) always gets the client: UDP datagrams cannot carry the
-- slice's audio, and `stepedit send --remote` uploads it, downloads the result into the
-- local output folder and mirrors the job's statuses into the local status file.
--
--   open_transport(settings) -> transport (raises when the setting asks for a missing kind)
--   sockets_available()      -> true when LuaSocket loads (OSC is possible)
--   query(addresses, on_reply)  ping/capabilities: on_reply(replies_by_address) or
--                               on_reply(nil, why) when the engine does not answer (why:
--                               what the client printed, or "unauthorized")
--   engine_down_message(settings) -> the text telling how to start the engine
--   unauthorized_message()        -> the text telling how to set the engine's secret
--   no_reply_message(why)         -> text, title for a query without answer
--
-- A transport:
--   .kind                     "osc" | "process"
--   .engine_down_s            no word about any job this long after sending: engine down
--   :start(job)               -> true | nil, why   sends job.request under job.id, as an
--                                edit, or as a transcription when job.address == "transcribe";
--                                job.sensitive = {{start, end}, ...} masks those file seconds
--                                before upload (remote engines)
--   :poll(jobs, now)          -> events {id, kind = accepted|progress|done|error, fraction,
--                                stage, output_path, result (JSON text or table; nil when
--                                the reply was cut short), code, message, retry_after}
--                                (an engine refusing a signature answers with id "");
--                                jobs with job.retry_at set wait for the batch to resend them
--   :is_silent(job, now)      -> true when the job is to be given up as lost
--   :cancel(job)
--   :query(addresses, on_reply)
--   :close(jobs)

local import = ...
local auth = import("auth")
local codec = import("codec")
local files = import("files")
local settings = import("settings")
local ui = import("ui")

local M = {}

local RESEND_S = 0.4          -- resend an unanswered /stepedit/edit (UDP may drop it)
local STATUS_QUERY_S = 3      -- ask for a silent job's status this often (OSC transport)
local SILENT_JOB_S = 15       -- OSC: a job whose status queries go unanswered this long failed
local STALLED_JOB_S = 900     -- process transport: no status-file change this long -> failed
local POLL_FILES_S = 0.2      -- status-file poll interval
local QUERY_TIMEOUT_S = 1.5   -- ping/capabilities
local MAX_DATAGRAM = 65535    -- transcripts make long replies; older LuaSocket reads 8192 at most

local ADDRESS = codec.ADDRESS

-------------------------------------------------------------------------------
-- OSC over UDP (LuaSocket)
-------------------------------------------------------------------------------

local function load_socket()
  local dir = reaper.GetResourcePath() ..
    "/Scripts/Mavriq ReaScript Repository/Various/Mavriq-Lua-Sockets/"
  if not package.cpath:find(dir, 1, true) then
    package.cpath = package.cpath .. ";" .. dir .. "?.dll;" .. dir .. "?.so"
    package.path = package.path .. ";" .. dir .. "?.lua"
  end
  for _, name in ipairs({ "socket", "socket.core" }) do
    local ok, socket = pcall(require, name)
    if ok and type(socket) == "table" and socket.udp then return socket end
  end
end

function M.sockets_available()
  return load_socket() ~= nil
end

local Osc = {}
Osc.__index = Osc

local function open_osc(s)
  local socket = load_socket()
  if not socket then return nil end
  local host = s.host
  if not host:match("^%d+%.%d+%.%d+%.%d+$") then host = socket.dns.toip(host) or host end
  local udp = socket.udp()
  udp:settimeout(0)
  local ok, err = udp:setsockname(host:match("^127%.") and host or "0.0.0.0", 0)
  if not ok then error("cannot open a UDP socket: " .. tostring(err)) end
  return setmetatable({ udp = udp, host = host, port = s.port, kind = "osc", key = s.key,
                        engine_down_s = 1.5 }, Osc)
end

function Osc:send(address, ...)
  local packet = codec.osc_encode(address, ...)
  if self.key then packet = auth.sign(packet, self.key) end
  self.udp:sendto(packet, self.host, self.port)
end

function Osc:start(job)
  self:send(ADDRESS[job.address or "edit"], job.id, codec.json_encode(job.request))
  job.asked_at = reaper.time_precise()
  return true
end

-- Reads every waiting datagram; returns the decoded messages. A datagram cut short by the
-- socket's buffer gives its leading arguments (a done reply keeps its output path).
function Osc:receive()
  local messages = {}
  while true do
    local data = self.udp:receive(MAX_DATAGRAM)
    if not data then break end
    local ok, decoded = pcall(codec.osc_decode, data)
    if not ok then decoded = { codec.osc_decode_head(data) } end
    for _, m in ipairs(decoded) do messages[#messages + 1] = m end
  end
  return messages
end

-- The replies about a job, by address: each is an event of that kind.
local EVENT_OF = {}
for _, kind in ipairs({ "accepted", "progress", "done", "error" }) do
  EVENT_OF[ADDRESS[kind]] = kind
end

function Osc:poll(jobs, now)
  local events = {}
  for _, m in ipairs(self:receive()) do
    local kind = EVENT_OF[m.address]
    if kind and type(m.args[1]) == "string" then
      local a = m.args
      events[#events + 1] = { id = a[1], kind = kind, fraction = a[2], stage = a[3],
                              output_path = a[2], result = a[3], code = a[2], message = a[3],
                              retry_after = a[4] }
    end
  end
  for _, job in ipairs(jobs) do -- UDP may drop packets: resend or ask again
    local every = job.accepted and STATUS_QUERY_S or RESEND_S
    if not job.final and not job.retry_at and now - job.asked_at >= every then
      if job.accepted then self:send(ADDRESS.status, job.id) else self:start(job) end
      job.asked_at = now
    end
  end
  return events
end

function Osc:is_silent(job, now)
  return now - job.heard_at > SILENT_JOB_S
end

function Osc:cancel(job)
  self:send(ADDRESS.cancel, job.id)
end

-- Asynchronous: sends every query, then reads replies from defer ticks until all answered
-- or QUERY_TIMEOUT_S passed.
function Osc:query(addresses, on_reply)
  local replies, want, started = {}, #addresses, reaper.time_precise()
  local reply_of = { [ADDRESS.ping] = ADDRESS.pong, [ADDRESS.capabilities] = ADDRESS.capabilities }
  for _, address in ipairs(addresses) do self:send(address) end
  local function tick()
    local ok, err = xpcall(function()
      for _, m in ipairs(self:receive()) do
        if m.address == ADDRESS.error and m.args[2] == "unauthorized" then
          self:close()
          on_reply(nil, "unauthorized")
          return false
        end
        for _, address in ipairs(addresses) do
          if reply_of[address] == m.address and not replies[address] then
            replies[address], want = m, want - 1
          end
        end
      end
      if want == 0 or reaper.time_precise() - started > QUERY_TIMEOUT_S then
        self:close()
        on_reply(want == 0 and replies or nil)
        return false
      end
      return true
    end, debug.traceback)
    if not ok then ui.msg("StepEdit: " .. tostring(err)) elseif err then reaper.defer(tick) end
  end
  return reaper.defer(tick)
end

function Osc:close()
  self.udp:close()
end

-------------------------------------------------------------------------------
-- `stepedit send` + status files (stock REAPER, no sockets)
-------------------------------------------------------------------------------

local Process = {}
Process.__index = Process

local function jobs_dir()
  local dir = files.join(reaper.GetResourcePath(), "Data/StepEdit/jobs")
  reaper.RecursiveCreateDirectory(dir, 0)
  return dir
end

-- The client reads the secret from a file only the user may read: a command line would show
-- it to every user (ps), and ExecProcess cannot set environment variables.
local function client_options(s)
  local options = " --engine " .. s.host .. ":" .. s.port
  if not s.key then return options end
  local path = files.join(files.dirname(jobs_dir()), "secret")
  local ok, err = files.write_private(path, s.key.secret)
  if not ok then error("cannot write " .. path .. ": " .. tostring(err), 0) end
  return options .. " --key-id " .. files.quote(s.key.id) .. " --secret-file " .. files.quote(path)
end

-- `send` options of a remote engine: the audio travels unless a mapping covers the paths.
local function send_options(s)
  if not s.remote then return "" end
  local options = " --remote --sensitive-sound " .. s.mask_sound
  for _, map in ipairs(s.map_paths) do options = options .. " --map-path " .. files.quote(map) end
  return options
end

-- Whole milliseconds that cover each span.
local function sensitive_options(job)
  local options = ""
  for _, span in ipairs(job.sensitive or {}) do
    options = options .. string.format(" --sensitive %.3f-%.3f",
      math.floor(span[1] * 1000) / 1000, math.ceil(span[2] * 1000) / 1000)
  end
  return options
end

local function open_process(s)
  return setmetatable({ command = s.engine_command, kind = "process", engine_down_s = 1.8,
                        options = client_options(s), send_options = send_options(s),
                        dir = jobs_dir() }, Process)
end

function Process:run(args)
  return reaper.ExecProcess(self.command .. " " .. args .. self.options, -2)
end

function Process:start(job)
  job.status_file = files.join(self.dir, job.id .. ".status.json")
  job.request_file = files.join(self.dir, job.id .. ".request.json")
  job.request.status_file = job.status_file
  local ok, err = files.write_file(job.request_file, codec.json_encode(job.request))
  if not ok then return nil, "cannot write " .. job.request_file .. ": " .. tostring(err) end
  os.remove(job.status_file) -- a resend after queue_full: read only the engine's new answer
  job.status_stamp = nil
  local kind = job.address == "transcribe" and "--kind transcribe " or ""
  if not self:run("send " .. kind .. "--job-id " .. job.id .. " --request-file " ..
      files.quote(job.request_file) .. self.send_options .. sensitive_options(job)) then
    return nil, "could not run the StepEdit client \"" .. self.command .. "\""
  end
  job.polled_at = 0
  return true
end

function Process:poll(jobs, now)
  local events = {}
  for _, job in ipairs(jobs) do
    if not job.final and not job.retry_at and now - job.polled_at >= POLL_FILES_S then
      job.polled_at = now
      local text = files.read_file(job.status_file)
      local ok, status = pcall(codec.json_decode, text or "")
      if text and ok and type(status) == "table" and status.job_id == job.id then
        local stamp = table.concat({ tostring(status.state), tostring(status.stage),
                                     tostring(status.progress) }, "|")
        if stamp ~= job.status_stamp then
          job.status_stamp = stamp
          local kind = codec.STATE_EVENTS[status.state]
          local err = type(status.error) == "table" and status.error or {}
          if kind then
            events[#events + 1] = {
              id = job.id, kind = kind, fraction = status.progress, stage = status.stage,
              output_path = status.output_path, result = status.result,
              code = err.code or status.state, message = err.message or "",
              retry_after = err.retry_after,
            }
          end
        end
      end
    end
  end
  return events
end

function Process:is_silent(job, now)
  return now - job.heard_at > (job.accepted and STALLED_JOB_S or SILENT_JOB_S)
end

function Process:cancel(job)
  self:run("cancel " .. job.id)
end

-- Blocking: the CLI prints the answer; this blocks REAPER for at most ~2 s.
function Process:query(addresses, on_reply)
  local replies = {}
  for _, address in ipairs(addresses) do
    local command = address == ADDRESS.ping and "ping" or "capabilities"
    local out = reaper.ExecProcess(self.command .. " " .. command .. self.options ..
      " --timeout " .. QUERY_TIMEOUT_S, 5000)
    local code, text = (out or ""):match("^(%-?%d+)\n(.*)$")
    if code ~= "0" then return on_reply(nil, out and text or "could not run " .. self.command) end
    if command == "ping" then
      replies[address] = { address = ADDRESS.pong, text = text }
    else
      replies[address] = { address = ADDRESS.capabilities, args = { text } }
    end
  end
  on_reply(replies)
end

function Process:close(jobs)
  for _, job in ipairs(jobs or {}) do
    if job.status_file then os.remove(job.status_file) end
    if job.request_file then os.remove(job.request_file) end
  end
end

-------------------------------------------------------------------------------
-- Picking a transport
-------------------------------------------------------------------------------

function M.open_transport(s)
  s = s or settings.settings()
  if s.remote and s.transport == "osc" then
    error("the engine is set as remote (or its host is not this computer), and OSC over " ..
      "UDP cannot carry audio: set the transport to auto or process, or \"Engine is " ..
      "remote\" to 0 when the engine can read this computer's files", 0)
  end
  if s.transport ~= "process" and not s.remote then
    local transport = open_osc(s)
    if transport then return transport end
    if s.transport == "osc" then
      error("the transport setting is \"osc\" but LuaSocket is not installed (install " ..
        "\"Mavriq Lua Sockets\" with ReaPack, or set the transport to auto)", 0)
    end
  end
  return open_process(s)
end

-- Calls on_reply(messages_by_address) when every address answered, or on_reply(nil) on timeout.
function M.query(addresses, on_reply)
  return M.open_transport(settings.settings()):query(addresses, on_reply)
end

function M.engine_down_message(s)
  s = s or settings.settings()
  return string.format(
    "The StepEdit engine is not answering on %s:%d.\n\n" ..
    "Start it with the action \"StepEdit_Start engine\", or in a terminal:\n\n" ..
    "    stepedit serve --port %d\n\nNothing was changed.",
    s.host, s.port, s.port)
end

function M.no_reply_message(why)
  if why == "unauthorized" then
    return M.unauthorized_message(), "StepEdit: engine refused the request"
  end
  return M.engine_down_message() .. (why and why ~= "" and "\n\n" .. why or ""),
    "StepEdit: engine not running"
end

function M.unauthorized_message()
  return "The StepEdit engine refused the request as unauthorized: it requires signed " ..
    "requests, and the secret or key id set here is missing or wrong (or this computer's " ..
    "clock is more than 60 s off the engine's).\n\n" ..
    "Set the engine's secret (shown by \"stepedit secret\" where the engine runs) and key " ..
    "id with the action \"StepEdit_Settings\"."
end

return M
