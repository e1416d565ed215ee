-- A protocol-v1 engine stand-in for the busted specs: answers over real UDP from inside the
-- emulator's defer loop (no Python). It renders nothing: the "result" is a WAV of the length
-- the edit would give. Feature tests against the real engine live in test_e2e.py.
local socket = require("socket")

local FakeEngine = {}
FakeEngine.__index = FakeEngine

local SPEED = { faster = 1.25, slower = 0.8, ["more faster"] = 1.5, ["more slower"] = 0.66 }

-- opts.lib: the StepEdit library (for its OSC/JSON codecs); opts.write_wav(path, seconds).
function FakeEngine.new(opts)
  local self = setmetatable({ lib = opts.lib, write_wav = opts.write_wav, jobs = {},
                              requests = {}, cancels = {}, received = {} }, FakeEngine)
  self.udp = assert(socket.udp())
  assert(self.udp:setsockname("127.0.0.1", 0))
  self.udp:settimeout(0)
  self.port = select(2, self.udp:getsockname())
  -- behaviour(request) -> nil (render), {error = {code, message}}, or {hold = true}
  self.behaviour = opts.behaviour or function() return nil end
  self.capabilities = opts.capabilities
  return self
end

function FakeEngine:reply(ip, port, address, ...)
  self.udp:sendto(self.lib.osc_encode(address, ...), ip, port)
end

function FakeEngine:latest(job, ip, port)
  self:reply(ip, port, table.unpack(job.latest))
end

function FakeEngine:edit(id, request_json, ip, port)
  local A = self.lib.ADDRESS
  if self.jobs[id] then return self:latest(self.jobs[id], ip, port) end
  local request = self.lib.json_decode(request_json)
  self.requests[#self.requests + 1] = { id = id, request = request }
  local job = { id = id, request = request, ip = ip, port = port }
  self.jobs[id] = job
  self:reply(ip, port, A.accepted, id)
  self:reply(ip, port, A.progress, id, self.lib.osc_float(0.5), "render")
  job.latest = { A.progress, id, self.lib.osc_float(0.5), "render" }
  local outcome = self.behaviour(request) or {}
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
  local factor = SPEED[request.edit.option] or 1
  local seconds = outcome.seconds or request.length / factor
  local stem = request.input:match("([^/]*)%.[^.]*$")
  local path = string.format("%s/%s.stepedit.%s.%s.wav", request.output_dir, stem,
    (request.edit.option or request.edit.type):gsub(" ", "-"), job.id:sub(1, 8))
  self.write_wav(path, seconds)
  local result = self.lib.json_encode({ duration = seconds, sample_rate = 16000, channels = 1,
                                        backend = "fake", edit = request.edit })
  job.latest = { A.done, job.id, path, result }
  self:latest(job, job.ip, job.port)
end

-- Finishes every held job (as if the engine had just rendered it).
function FakeEngine:finish_held()
  for _, job in pairs(self.jobs) do
    if job.held then self:render(job, {}) end
  end
end

-- Answers every datagram waiting on the socket.
function FakeEngine:serve()
  local A = self.lib.ADDRESS
  while true do
    local data, ip, port = self.udp:receivefrom()
    if not data then return end
    for _, m in ipairs(self.lib.osc_decode(data)) do
      self.received[#self.received + 1] = m.address
      local id = m.args[1]
      if m.address == A.edit then
        self:edit(id, m.args[2], ip, port)
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
