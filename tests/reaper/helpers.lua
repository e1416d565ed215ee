-- Shared helpers of the busted specs: temp folders, WAV files, the library, a fake engine.
local Emulator = dofile("tests/reaper/reaper_emulator.lua")

local H = { Emulator = Emulator }

H.SCRIPTS = "reaper_scripts/"

function H.tmpdir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -p '" .. path .. "'"))
  return path
end

function H.rmdir(path)
  if path and path:match("^/tmp/") then os.execute("rm -rf '" .. path .. "'") end
end

-- A mono or stereo 16-bit WAV holding a quiet sine of `seconds`.
function H.write_wav(path, seconds, rate, channels)
  rate, channels = rate or 16000, channels or 1
  local frames = math.floor(seconds * rate + 0.5)
  local samples = {}
  for i = 0, frames - 1 do
    local v = math.floor(8000 * math.sin(2 * math.pi * 220 * i / rate))
    for _ = 1, channels do samples[#samples + 1] = string.pack("<i2", v) end
  end
  local data = table.concat(samples)
  local f = assert(io.open(path, "wb"))
  f:write("RIFF", string.pack("<I4", 36 + #data), "WAVE",
    "fmt ", string.pack("<I4I2I2I4I4I2I2", 16, 1, channels, rate, rate * channels * 2,
      channels * 2, 16),
    "data", string.pack("<I4", #data), data)
  f:close()
  return path
end

local function copy_file(from, to)
  local src = assert(io.open(from, "rb"))
  local dst = assert(io.open(to, "wb"))
  dst:write(src:read("a"))
  src:close()
  dst:close()
end

-- Installs the scripts as ReaPack does from index.xml: each <source> becomes a copy of its
-- file named by its file= attribute (a metapackage alias, or a library module's path such as
-- StepEdit/codec.lua) or by the file itself, in <resource_dir>/Scripts/<index>/<category>/.
-- Returns that folder, with a trailing "/".
function H.install(resource_dir)
  local f = assert(io.open(H.SCRIPTS .. "index.xml", "rb"))
  local index = f:read("a")
  f:close()
  local folder = resource_dir .. "/Scripts/" .. index:match('<index [^>]*name="([^"]*)"') ..
    "/" .. index:match('<category name="([^"]*)"') .. "/"
  assert(os.execute("mkdir -p '" .. folder .. "'"))
  for attributes, url in index:gmatch("<source([^>]*)>([^<]*)</source>") do
    local path = url:match("/reaper_scripts/(.*)$"):gsub("%%(%x%x)", function(hex)
      return string.char(tonumber(hex, 16))
    end)
    local target = folder .. (attributes:match('file="([^"]*)"') or path)
    assert(os.execute("mkdir -p '" .. target:match("^(.*)/") .. "'"))
    copy_file(H.SCRIPTS .. path, target)
  end
  return folder
end

-- A fresh library table (the file is loaded anew, as each REAPER action does).
function H.lib()
  return dofile(H.SCRIPTS .. "StepEdit_lib.lua")
end

-- One library module (StepEdit/<name>.lua) with the modules it imports, loaded anew.
function H.module(name)
  local loaded = {}
  local function import(n)
    loaded[n] = loaded[n] or assert(loadfile(H.SCRIPTS .. "StepEdit/" .. n .. ".lua"))(import)
    return loaded[n]
  end
  return import(name)
end

-- A project folder with a Media subfolder, an emulator installed as `reaper`, one track, and
-- the scripts installed in its resource folder as ReaPack would (H.action finds them).
function H.project(opts)
  opts = opts or {}
  local dir = H.tmpdir()
  local emu = Emulator.new({ project_dir = dir, media_dir = dir .. "/Media",
                             resource_dir = dir .. "/resource" })
  os.execute("mkdir -p '" .. dir .. "/Media' '" .. dir .. "/resource'")
  emu:install()
  emu.dir = dir
  emu.track = emu:add_track()
  emu.scripts = H.install(dir .. "/resource")
  if opts.port then emu:set_extstate("StepEdit", "port", opts.port, true) end
  return emu
end

-- The installed action StepEdit_<name>.lua of a project made by H.project.
function H.action(emu, name)
  return emu.scripts .. "StepEdit_" .. name .. ".lua"
end

-- Runs an action and its deferred work; checks that it raised nothing and left no undo
-- block open and no PreventUIRefresh unbalanced. Returns what run_deferred returns.
-- (busted's assertions come from luassert; the global assert of this chunk is Lua's own.)
function H.run_checked(emu, script, timeout)
  local check = require("luassert")
  emu:run_script(H.action(emu, script))
  local outcome = emu:run_deferred(timeout or 10)
  check.are.same({}, emu.errors)
  check.are.equal(0, emu.ui_refresh, "PreventUIRefresh calls are unbalanced")
  check.are.equal(0, emu.undo_depth, "an undo block was left open")
  return outcome
end

function H.assert_close(expected, actual, tolerance)
  require("luassert").is_true(math.abs(expected - actual) < (tolerance or 1e-6),
    string.format("expected %.6f, got %.6f", expected, actual))
end

function H.console_text(emu)
  return table.concat(emu.console)
end

-- Installs a ReaImGui stand-in: reaper.ImGui_GetBuiltinPath points at a folder whose imgui.lua
-- returns the table `api` for any version (the version asked is kept in api.version_asked).
function H.fake_imgui(emu, api)
  local dir = emu.dir .. "/imgui"
  os.execute("mkdir -p '" .. dir .. "'")
  local f = assert(io.open(dir .. "/imgui.lua", "w"))
  f:write("return function(version) _G.IMGUI_FAKE.version_asked = version " ..
    "return _G.IMGUI_FAKE end\n")
  f:close()
  package.loaded.imgui = nil -- a module of another test may be cached
  _G.IMGUI_FAKE = api
  rawset(reaper, "ImGui_GetBuiltinPath", function() return dir end)
  return api
end

return H
