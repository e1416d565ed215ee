-- A protocol-v1 engine stand-in for the busted specs: answers over real UDP from inside the
-- emulator's defer loop (no Python). It renders nothing: the "result" is a WAV of the length
-- the edit would give; a transcript is FakeEngine.TEXT spread evenly over the slice, and a
-- text edit's word list keeps the target text's plain words. Feature tests against the real
-- engine live in test_e2e.py.
local socket = require("socket")

local FakeEngine = {}
FakeEngine.__index = FakeEngine

local SPEED = { faster = 1.25, slower = 0.8, ["more faster"] = 1.5, ["more slower"] = 0.66 }
local FILLERS = { um = true, uh = true, er = true }

FakeEngine.TEXT = "um so the plan is simple"

local function split(text)
  local words = {}
  for word in (text or ""):gmatch("%S+") do words[#words + 1] = word end
  return words
end

-- The transcript object of the protocol: `text`'s words evenly over the slice.
function FakeEngine.transcript(request, text)
  local words, length = split(text or FakeEngine.TEXT), request.length or 1
  local out, step = {}, length / (#words + 1)
  for i, word in ipairs(words) do
    local start = step * (i - 0.5)
    out[i] = { word = word, start = start, ["end"] = start + step * 0.8,
               source_start = request.start + start, source_end = request.start + start + step * 0.8,
               confidence = 0.9, filler = FILLERS[word] == true }
  end
  return { language = "en", model = "fake-asr", aligned = false, duration = length,
           text = table.concat(words, " "), words = out }
end

-- The word list of a text edit's result: the target text's plain words, kept, evenly over
-- `seconds` (tags and {masked} words left out, as they are not spoken words).
function FakeEngine.edit_words(edit, seconds)
  local words = {}
  for _, word in ipairs(split(edit.target_text)) do
    if not word:match("^%[") and not word:match("^{") then words[#words + 1] = word end
  end
  local out, step = {}, seconds / (#words + 1)
  for i, word in ipairs(words) do
    out[i] = { word = word, action = "kept", start = step * (i - 0.5), ["end"] = step * (i + 0.3) }
  end
  return out
end

local function stem(request)
  return request.input:match("([^/]*)%.[^.]*$")
end

-- Writes the sidecar of a transcription; returns its path and the result object.
function FakeEngine.transcribe(lib, id, request, outcome)
  local transcript = outcome.transcript or FakeEngine.transcript(request, outcome.text)
  local path = string.format("%s/%s.stepedit.transcript.%s.json", request.output_dir,
    stem(request), id:sub(1, 8))
  if not outcome.no_sidecar then
    local f = assert(io.open(path, "wb"))
    f:write(lib.json_encode(transcript))
    f:close()
  end
  local result = { duration = request.length, sample_rate = 16000, channels = 1,
                   input = request.input, start = request.start, length = request.length,
                   transcript = transcript }
  if outcome.words_in_file then
    local copy = {}
    for k, v in pairs(transcript) do copy[k] = v end
    copy.words = nil
    result.words_in_file, result.transcript = true, copy
  end
  return path, result
end

-- Writes an edit's result WAV; returns its path and the result object.
function FakeEngine.render_edit(id, request, outcome, write_wav)
  local factor = SPEED[request.edit.option] or 1
  local seconds = outcome.seconds or request.length / factor
  local path = string.format("%s/%s.stepedit.%s.%s.wav", request.output_dir, stem(request),
    (request.edit.option or request.edit.type):gsub(" ", "-"), id:sub(1, 8))
  write_wav(path, seconds)
  local result = { duration = seconds, sample_rate = 16000, channels = 1, backend = "fake",
                   edit = request.edit }
  if request.edit.type == "text" or request.edit.type == "fillers" then
    result.words = outcome.words or FakeEngine.edit_words(request.edit, seconds)
  end
  return path, result
end

-- opts.lib: the StepEdit library (for its OSC/JSON codecs); opts.write_wav(path, seconds).
function FakeEngine.new(opts)
  local self = setmetatable({ lib = opts.lib, write_wav = opts.write_wav, jobs = {},
                              requests = {}, cancels = {}, received = {} }, FakeEngine)
  self.udp = assert(socket.udp())
  assert(self.udp:setsockname("127.0.0.1", 0))
  self.udp:settimeout(0)
  self.port = select(2, self.udp:getsockname())
  -- behaviour(request, address) -> nil (render), {error = {code, message}}, {hold = true},
  -- {queue_full = retry_after} (refused; the id is not remembered, as the engine does), or
  -- what the result holds: {seconds=, words=} (edits), {transcript=, text=, words_in_file=,
  -- no_sidecar=} (transcriptions)
  self.behaviour = opts.behaviour or function() return nil end
  self.capabilities = opts.capabilities
  -- opts.key = {id=, secret=}: only messages signed with it are served (opts.auth: auth.lua)
  self.key, self.auth, self.unauthorized = opts.key, opts.auth, 0
  return self
end

function FakeEngine:reply(ip, port, address, ...)
  self.udp:sendto(self.lib.osc_encode(address, ...), ip, port)
end

function FakeEngine:latest(job, ip, port)
  self:reply(ip, port, table.unpack(job.latest))
end

function FakeEngine:edit(id, request_json, ip, port, address)
  local A = self.lib.ADDRESS
  if self.jobs[id] then return self:latest(self.jobs[id], ip, port) end
  local request = self.lib.json_decode(request_json)
  self.requests[#self.requests + 1] = { id = id, request = request, address = address or A.edit }
  local outcome = self.behaviour(request, address or A.edit) or {}
  if outcome.queue_full then
    return self:reply(ip, port, A.error, id, "queue_full", "too many jobs waiting",
      self.lib.osc_float(outcome.queue_full))
  end
  local job = { id = id, request = request, ip = ip, port = port, address = address or A.edit }
  self.jobs[id] = job
  self:reply(ip, port, A.accepted, id)
  self:reply(ip, port, A.progress, id, self.lib.osc_float(0.5), "render")
  job.latest = { A.progress, id, self.lib.osc_float(0.5), "render" }
  if outcome.hold then
    job.held = true
    return
  end
  self:render(job, outcome)
end

function FakeEngine:render(job, outcome)
  local A, request = self.lib.ADDRESS, job.request
  job.held = false
  if outcome.error then
    job.latest = { A.error, job.id, outcome.error[1], outcome.error[2] }
    return self:latest(job, job.ip, job.port)
  end
  local path, result
  if job.address == A.transcribe then
    path, result = FakeEngine.transcribe(self.lib, job.id, request, outcome)
  else
    path, result = FakeEngine.render_edit(job.id, request, outcome, self.write_wav)
  end
  job.latest = { A.done, job.id, path, self.lib.json_encode(result) }
  self:latest(job, job.ip, job.port)
end

-- Finishes every held job (as if the engine had just rendered it).
function FakeEngine:finish_held()
  for _, job in pairs(self.jobs) do
    if job.held then self:render(job, {}) end
  end
end

-- The messages of a datagram; with a key, only of one signed with it (else it answers
-- unauthorized to the source, as the engine does).
function FakeEngine:unwrap(data, ip, port)
  local messages = self.lib.osc_decode(data)
  if not self.key then return messages end
  local m = messages[1]
  local a = m.args
  if m.address == self.lib.ADDRESS.auth and a[1] == self.key.id
      and a[4] == self.auth.tag(self.key.secret, a[1], a[2], a[3], a[5]) then
    return self.lib.osc_decode(a[5])
  end
  self.unauthorized = self.unauthorized + 1
  self:reply(ip, port, self.lib.ADDRESS.error, "", "unauthorized", "wrong_tag: signature")
  return {}
end

-- Answers every datagram waiting on the socket.
function FakeEngine:serve()
  local A = self.lib.ADDRESS
  while true do
    local data, ip, port = self.udp:receivefrom()
    if not data then return end
    for _, m in ipairs(self:unwrap(data, ip, port)) do
      self.received[#self.received + 1] = m.address
      local id = m.args[1]
      if m.address == A.edit or m.address == A.transcribe then
        self:edit(id, m.args[2], ip, port, m.address)
      elseif m.address == A.cancel then
        self.cancels[#self.cancels + 1] = id
        local job = self.jobs[id]
        if job and job.latest[1] ~= A.done then
          job.latest = { A.error, id, "cancelled", "the job was cancelled" }
        end
        if job then self:latest(job, ip, port) end
      elseif m.address == A.status and self.jobs[id] then
        self:latest(self.jobs[id], ip, port)
      elseif m.address == A.ping then
        self:reply(ip, port, A.pong, 1, "0.0-fake", "fake", "cpu")
      elseif m.address == A.capabilities then
        self:reply(ip, port, A.capabilities, self.lib.json_encode(self.capabilities))
      end
    end
  end
end

function FakeEngine:close()
  self.udp:close()
end

return FakeEngine
