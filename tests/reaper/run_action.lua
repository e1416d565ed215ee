--[==[
Runs one StepEdit action script, unchanged, in the REAPER emulator against whatever engine
the settings point at, on the real wall clock; used by the pytest end-to-end tests.

  lua5.4 tests/reaper/run_action.lua scenario.json result.json

scenario.json:
  script          path of the action script
  project_dir     folder of the project (.rpp would live here); media_dir: its media folder
  sockets         false hides LuaSocket from the script (stock REAPER: process transport)
  extstate        {key: value} for section "StepEdit"
  cursor          edit cursor position (seconds)
  regions         [{start, end, name}] project regions
  items           [{file, position, length, startoffs, playrate, selected, section_offset}]
  responses       {MB: [...], GetUserInputs: [[...]], showmenu: [...]}
  edit_text       [[[pattern, replacement], ...], ...]: further GetUserInputs answers, each the
                  text the dialog shows (its fields joined) rewritten by string.gsub, in one
                  field (for "Edit as text", whose text comes from the engine)
  timeout         seconds to run the defer loop (default 60)
  undo            true: undo the last undo point afterwards and dump again

result.json: outcome, errors, messages, console, undo_points, processes, mutations_outside,
ui_refresh, undo_depth, extstate, before, after, after_undo.
]==]
local socket = require("socket") -- the harness's own clock; hidden from the script if asked
local json = require("dkjson")
local Emulator = dofile("tests/reaper/reaper_emulator.lua")

local scenario_path, result_path = arg[1], arg[2]
local f = assert(io.open(scenario_path, "rb"))
local scenario = assert(json.decode(f:read("a")))
f:close()

local emu = Emulator.new({
  project_dir = scenario.project_dir, media_dir = scenario.media_dir,
  resource_dir = scenario.resource_dir or (scenario.project_dir .. "/reaper-resource"),
  clock = "real", now = socket.gettime, sleep = socket.sleep,
  process_log = scenario.process_log,
})
os.execute("mkdir -p '" .. emu.resource_dir .. "'")
for key, value in pairs(scenario.extstate or {}) do emu:set_extstate("StepEdit", key, value, true) end
for kind, list in pairs(scenario.responses or {}) do emu.responses[kind] = list end
for _, rewrites in ipairs(scenario.edit_text or {}) do
  table.insert(emu.responses.GetUserInputs, function(asked)
    local text = table.concat(asked.values, " "):gsub("%s+$", "")
    asked.shown = text
    for _, rewrite in ipairs(rewrites) do text = text:gsub(rewrite[1], rewrite[2]) end
    return { text }
  end)
end
emu.project.cursor = scenario.cursor or 0
for _, region in ipairs(scenario.regions or {}) do
  emu.reaper.AddProjectMarker2(0, true, region.start, region["end"], region.name, -1, 0)
end

local track = emu:add_track()
for _, spec in ipairs(scenario.items or {}) do
  if spec.section_offset then
    local root = assert(emu:wave_source(spec.file))
    spec.source = emu:section_source(root, spec.section_offset)
  end
  emu:add_item(track, spec)
end

if scenario.sockets == false then -- as in a REAPER without the Mavriq sockets package
  for name in pairs(package.loaded) do
    if name == "socket" or name:match("^socket%.") or name == "mime" or name:match("^mime%.") then
      package.loaded[name] = nil
    end
  end
  package.path, package.cpath = "", ""
end

emu:install()
local before = emu:dump()
emu:run_script(scenario.script)
local outcome = emu:run_deferred(scenario.timeout or 60)
local after = emu:dump()
local undo_points = {}
for _, point in ipairs(emu.undo_points) do
  undo_points[#undo_points + 1] = { description = point.description, flags = point.flags }
end
local undone
if scenario.undo and #emu.undo_points > 0 then
  emu:undo()
  undone = emu:dump()
end

local outside = {}
for _, m in ipairs(emu.mutations) do
  if not m.in_undo_block then outside[#outside + 1] = m.what end
end
local extstate = {}
for key, entry in pairs(emu.extstate.StepEdit or {}) do extstate[key] = entry.value end
local processes = {}
for _, p in ipairs(emu.processes) do
  processes[#processes + 1] = { cmdline = p.cmdline, args = p.args, timeout = p.timeout,
                                started = p.started, pid = p.pid, at = p.at }
end

local out = assert(io.open(result_path, "wb"))
out:write(json.encode({
  outcome = outcome, errors = emu.errors, messages = emu.messages,
  console = table.concat(emu.console), undo_points = undo_points, processes = processes,
  mutations_outside = outside,
  menus = emu.menus, inputs_asked = emu.inputs_asked, ui_refresh = emu.ui_refresh, undo_depth = emu.undo_depth,
  extstate = extstate, before = before, after = after, after_undo = undone,
}, { indent = true }))
out:close()
