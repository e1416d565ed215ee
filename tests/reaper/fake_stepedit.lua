--[[
A stand-in for the `stepedit` client that the process transport runs (no sockets, no Python):

  lua5.4 tests/reaper/fake_stepedit.lua send [--kind edit|transcribe] --job-id ID
                                        --request-file F --engine HOST:PORT

It appends its arguments to <request folder>/fake-stepedit.log (one JSON array a line), then
does what the engine would: writes the job's status file, state "done", with the result of
fake_engine.lua (a transcript with its sidecar, or a result WAV). Run from the repository root.
]]
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local lib = dofile(here .. "/../../reaper_scripts/StepEdit/codec.lua")
local FakeEngine = dofile(here .. "/fake_engine.lua")
local H = dofile(here .. "/helpers.lua")

local options, positional = {}, {}
local i = 1
while i <= #arg do
  local name = arg[i]:match("^%-%-(.*)$")
  if name then
    options[name], i = arg[i + 1], i + 1
  else
    positional[#positional + 1] = arg[i]
  end
  i = i + 1
end

local function write(path, text)
  local f = assert(io.open(path .. ".tmp", "wb"))
  f:write(text)
  f:close()
  assert(os.rename(path .. ".tmp", path))
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

if positional[1] ~= "send" then os.exit(0) end -- cancel, ping, ...: nothing to do here
local request = lib.json_decode(read(options["request-file"]))
local log_path = options["request-file"]:match("^(.*)/") .. "/fake-stepedit.log"
local log = assert(io.open(log_path, "ab"))
log:write(lib.json_encode(lib.json_array({ table.unpack(arg) })), "\n")
log:close()

local id, path, result = options["job-id"]
if options.kind == "transcribe" then
  path, result = FakeEngine.transcribe(lib, id, request, {})
else
  path, result = FakeEngine.render_edit(id, request, {}, H.write_wav)
end
write(request.status_file, lib.json_encode({
  protocol_version = 1, job_id = id, state = "done", progress = 1, stage = "writing",
  output_path = path, result = result,
}))
print(id)
