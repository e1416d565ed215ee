-- The action scripts, run unchanged in the emulator against a fake engine over real UDP:
-- results as takes, length handling, undo, failures, cancel, engine down, dialogs.
local H = dofile("tests/reaper/helpers.lua")
local FakeEngine = dofile("tests/reaper/fake_engine.lua")

local CAPABILITIES = {
  protocol_version = 1, engine_version = "0.0-fake", backend = "fake", device = "cpu",
  max_iterations = 5,
  edit_types = {
    emotion = { options = { "happy", "sad" }, uses = { "text" }, requires = {} },
    speed = { options = { "faster", "slower" }, uses = { "text" }, requires = {} },
    denoise = { options = {}, uses = {}, requires = {} },
    paralinguistic = { options = { "Laughter" }, uses = { "text", "target_text", "positions" },
                       requires = {} },
  },
  backends = { fake = { edits = { speed = { "faster", "slower" }, denoise = {} } } },
}

local close = H.assert_close

describe("StepEdit actions", function()
  local emu, lib, engine, wav

  local function run(script, timeout)
    return H.run_checked(emu, script, timeout)
  end

  before_each(function()
    lib = H.lib()
    engine = FakeEngine.new({ lib = lib, write_wav = H.write_wav, capabilities = CAPABILITIES })
    emu = H.project({ port = engine.port })
    emu.on_tick = function() engine:serve() end
    wav = H.write_wav(emu.dir .. "/Media/voice.wav", 4)
  end)

  after_each(function()
    engine:close()
    H.rmdir(emu.dir)
  end)

  it("adds the edit as a new active take on every selected item, in one undo point", function()
    local a = emu:add_item(emu.track, { file = wav, position = 0, length = 2 })
    local b = emu:add_item(emu.track, { file = wav, position = 5, startoffs = 1, length = 2.5 })
    emu:add_item(emu.track, { file = wav, position = 9, selected = false })
    local before = emu:dump()
    assert.are.equal("idle", run("Faster"))

    assert.are.equal(2, #engine.requests)
    local request = engine.requests[2].request
    assert.are.same({ type = "speed", option = "faster", iterations = 1 }, request.edit)
    close(1, request.start)
    close(2.5, request.length)
    assert.are.equal(emu.dir .. "/Media", request.output_dir)

    for _, item in ipairs({ a, b }) do
      assert.are.equal(2, #item.takes)
      assert.are.equal(2, item.curtake, "the new take is active")
      local take, old = item.takes[2], item.takes[1]
      assert.are.equal("StepEdit faster", take.name)
      assert.matches("^" .. emu.dir .. "/Media/voice%.stepedit%.faster%.", take.source.file)
      assert.are.equal(0, take.values.D_STARTOFFS)
      close(take.source.length, item.values.D_LENGTH) -- the item follows the new take
      assert.are.equal(0, item.values.B_LOOPSRC)
      assert.are.equal("voice.wav", old.name)
      assert.are.equal(wav, old.source.file)
      local meta = lib.json_decode(take.ext.StepEdit)
      assert.are.equal("faster", meta.edit.option)
      assert.are.equal(1, meta.passes)
    end
    close(2 / 1.25, a.values.D_LENGTH)
    close(2.5 / 1.25, b.values.D_LENGTH)

    assert.are.equal(1, #emu.undo_points)
    assert.are.equal("StepEdit faster", emu.undo_points[1].description)
    assert.are.equal(4, emu.undo_points[1].flags)
    for _, m in ipairs(emu.mutations) do
      if m.what ~= "take P_NAME" then assert.is_true(m.in_undo_block, m.what) end
    end
    assert.are.same({}, emu.messages)
    assert.are.equal("", reaper.GetExtState("StepEdit", "running"))
    emu:undo()
    assert.are.same(before, emu:dump())
  end)

  it("keeps the item length when the keep-length setting is on", function()
    emu:set_extstate("StepEdit", "keep_length", "1", true)
    local item = emu:add_item(emu.track, { file = wav, length = 2 })
    run("Slower")
    assert.are.equal("StepEdit slower", item.takes[2].name)
    close(2, item.values.D_LENGTH)
    assert.is_nil(engine.requests[1].request.edit.keep_length) -- the engine does not list it
  end)

  it("asks for keep_length where the engine lists it, and keeps the item's length", function()
    engine.capabilities.edit_types.denoise.uses = { "keep_length" }
    emu:set_extstate("StepEdit", "keep_length", "1", true)
    local item = emu:add_item(emu.track, { file = wav, length = 2 })
    run("Denoise")
    assert.is_true(engine.requests[1].request.edit.keep_length)
    close(2, item.values.D_LENGTH)
    assert.is_nil(lib.json_decode(item.takes[2].ext.StepEdit).edit.keep_length) -- not repeated
  end)

  it("runs the stepedit client in remote mode for a remote engine, even with sockets", function()
    emu:set_extstate("StepEdit", "remote", "1", true)
    emu:set_extstate("StepEdit", "map_paths", "/p=/q", true)
    emu:set_extstate("StepEdit", "engine_command", "/no/such/stepedit", true)
    emu:add_item(emu.track, { file = wav, position = 10, startoffs = 1, length = 2, playrate = 0.5 })
    reaper.AddProjectMarker2(0, true, 10.5, 11, "Sensitive: name", -1, 0) -- file 1.25-1.5
    reaper.AddProjectMarker2(0, true, 11.5, 13, "sensitive", -1, 0)     -- file 1.75-2 (end)
    reaper.AddProjectMarker2(0, true, 10, 11, "intro", -1, 0)
    reaper.AddProjectMarker2(0, true, 20, 21, "sensitive", -1, 0)       -- after the item
    run("Denoise")
    assert.matches(" send .* %-%-remote %-%-sensitive%-sound room_tone %-%-map%-path /p=/q " ..
      "%-%-sensitive 1%.250%-1%.500 %-%-sensitive 1%.750%-2%.000 %-%-engine ",
      emu.processes[1].cmdline)
    assert.are.equal(0, #engine.requests)
  end)

  it("sends a local engine no sensitive spans: its audio does not travel", function()
    emu:add_item(emu.track, { file = wav, length = 2 })
    reaper.AddProjectMarker2(0, true, 0.5, 1, "sensitive", -1, 0)
    run("Denoise")
    assert.are.equal(1, #engine.requests)
    assert.are.equal(0, #emu.processes)
  end)

  it("refuses the osc transport for a remote engine: UDP cannot carry audio", function()
    emu:set_extstate("StepEdit", "transport", "osc", true)
    emu:set_extstate("StepEdit", "host", "192.0.2.7", true)
    emu:add_item(emu.track, { file = wav, length = 2 })
    run("Denoise")
    assert.matches("OSC over UDP cannot carry audio", emu.messages[1].text, 1, true)
    assert.are.equal(0, #emu.processes)
    assert.are.equal(0, #emu.undo_points)
  end)

  it("copies the playrate so the new take plays like the old one", function()
    local item = emu:add_item(emu.track, { file = wav, length = 1, playrate = 2 })
    run("Denoise")
    close(2, engine.requests[1].request.length)
    close(2, item.takes[2].values.D_PLAYRATE)
    close(1, item.values.D_LENGTH)
  end)

  it("uses the default iterations and names the take after them", function()
    emu:set_extstate("StepEdit", "iterations", "2", true)
    local item = emu:add_item(emu.track, { file = wav })
    run("More happy")
    assert.are.equal(2, engine.requests[1].request.edit.iterations)
    assert.are.equal("StepEdit happy \u{D7}2", item.takes[2].name)
    assert.are.equal("StepEdit happy \u{D7}2", emu.undo_points[1].description)
  end)

  it("lists every failure in one message and leaves those items unchanged", function()
    engine.behaviour = function(request)
      if request.start > 0 then return { error = { "unsupported", "no emotion on cpu" } } end
    end
    local good = emu:add_item(emu.track, { file = wav, length = 1 })
    local bad = emu:add_item(emu.track, { file = wav, position = 3, startoffs = 1, length = 1 })
    local midi = emu:add_item(emu.track, { source = emu:midi_source(2), position = 6 })
    run("More sad")
    assert.are.equal(2, #good.takes)
    assert.are.equal(1, #bad.takes)
    assert.are.equal(1, #midi.takes)
    assert.are.equal(1, #emu.messages)
    local text = emu.messages[1].text
    assert.matches("2 of 3 item", text)
    assert.matches("unsupported: no emotion on cpu", text, 1, true)
    assert.matches("MIDI takes cannot be edited", text, 1, true)
    assert.are.equal(1, #emu.undo_points)
  end)

  it("reports an item deleted while the engine worked", function()
    engine.behaviour = function() return { hold = true } end
    local item = emu:add_item(emu.track, { file = wav })
    emu:run_script(H.action(emu, "Faster"))
    for _ = 1, 5 do emu:tick() end
    emu.track.items = {}
    engine:finish_held()
    assert.are.equal("idle", emu:run_deferred(10))
    assert.are.same({}, emu.errors)
    assert.matches("deleted", emu.messages[1].text)
    assert.are.equal(0, #emu.undo_points)
    assert.is_not_nil(item)
  end)

  it("says how to start the engine within 2 s when it is down, and changes nothing", function()
    emu:set_extstate("StepEdit", "port", "9", true) -- nothing listens there
    emu:add_item(emu.track, { file = wav, length = 2 })
    local before = emu:dump()
    run("Faster")
    assert.are.equal(1, #emu.messages)
    assert.matches("not answering on 127.0.0.1:9", emu.messages[1].text, 1, true)
    assert.matches("stepedit serve --port 9", emu.messages[1].text, 1, true)
    assert.matches("Start engine", emu.messages[1].text, 1, true)
    assert.is_true(emu.messages[1].at <= 2)
    assert.are.same(before, emu:dump())
    assert.are.equal(0, #emu.undo_points)
  end)

  it("shows progress in the take name and console, and cancels from another action", function()
    engine.behaviour = function() return { hold = true } end
    local item = emu:add_item(emu.track, { file = wav })
    emu:run_script(H.action(emu, "More happy"))
    for _ = 1, 5 do emu:tick() end
    assert.are.equal("voice.wav [StepEdit 50%]", item.takes[1].name)
    assert.matches("render 50%", H.console_text(emu), 1, true)
    assert.are_not.equal("", reaper.GetExtState("StepEdit", "running"))
    emu:run_script(H.action(emu, "Cancel jobs"))
    assert.are.equal("idle", emu:run_deferred(5))
    assert.are.same({}, emu.errors)
    assert.is_true(#engine.cancels >= 1)
    assert.are.equal(1, #item.takes)
    assert.are.equal("voice.wav", item.takes[1].name)
    assert.are.same({}, emu.messages)
    assert.are.equal(0, #emu.undo_points)
    assert.are.equal("", reaper.GetExtState("StepEdit", "running"))
  end)

  it("inserts at the edit cursor, in the item's source time", function()
    local item = emu:add_item(emu.track, { file = wav, position = 10, startoffs = 1, length = 2 })
    local away = emu:add_item(emu.track, { file = wav, position = 20, length = 1 })
    reaper.SetEditCurPos(10.75)
    run("Insert laughter at edit cursor")
    assert.are.equal(1, #engine.requests)
    local edit = engine.requests[1].request.edit
    assert.are.equal("paralinguistic", edit.type)
    assert.are.equal("Laughter", edit.option)
    close(0.75, edit.position[1])
    assert.are.equal("StepEdit Laughter", item.takes[2].name)
    assert.are.equal(1, #away.takes)
    assert.matches("edit cursor is not inside", emu.messages[1].text)
  end)

  it("repeats the last edit, and iterates on the active take", function()
    local item = emu:add_item(emu.track, { file = wav, length = 2 })
    run("Faster")
    run("Repeat last edit on selected items")
    assert.are.same(engine.requests[1].request.edit, engine.requests[2].request.edit)
    run("One more pass on the active take")
    local request = engine.requests[3].request
    assert.are.equal(item.takes[3].source.file, request.input) -- the previous result
    assert.are.equal(1, request.edit.iterations)
    assert.are.equal("StepEdit faster \u{D7}2", item.takes[4].name)
    assert.are.equal("StepEdit faster \u{D7}2", emu.undo_points[3].description)
  end)

  it("refuses one more pass on a take StepEdit did not make", function()
    emu:add_item(emu.track, { file = wav })
    run("One more pass on the active take")
    assert.are.equal(0, #engine.requests)
    assert.matches("not a StepEdit result", emu.messages[1].text)
  end)

  it("builds the edit dialog from the engine's capabilities", function()
    local item = emu:add_item(emu.track, { file = wav, length = 2 })
    emu.responses.showmenu = { "speed/slower" }
    emu.responses.GetUserInputs = { { "3", "a transcript" } }
    run("Edit selected items")
    local menu = emu.menus[1]
    assert.matches(">emotion|#happy|<#sad", menu, 1, true) -- reported but not renderable
    assert.matches(">speed|faster|<slower", menu, 1, true)
    assert.matches("denoise", menu, 1, true)
    assert.are.same({ "Iterations (1-5)", "Transcript (optional)" }, emu.inputs_asked[1].captions)
    assert.are.same({ type = "speed", option = "slower", iterations = 3, text = "a transcript" },
      engine.requests[1].request.edit)
    assert.are.equal("StepEdit slower \u{D7}3", item.takes[2].name)
  end)

  it("reports the engine status from ping and capabilities", function()
    run("Engine status")
    assert.are.equal(1, #emu.messages)
    local text = emu.messages[1].text
    assert.matches("backend fake on cpu", text, 1, true)
    assert.matches("speed: faster, slower", text, 1, true)
  end)

  it("tells how to start the engine when the dialog or status finds it down", function()
    emu:set_extstate("StepEdit", "port", "9", true)
    emu:add_item(emu.track, { file = wav })
    run("Edit selected items")
    run("Engine status")
    assert.are.equal(2, #emu.messages)
    for _, m in ipairs(emu.messages) do
      assert.matches("stepedit serve --port 9", m.text, 1, true)
      assert.is_true(m.at <= 2 * 2) -- two actions, each under 2 s
    end
    assert.are.same({}, emu.menus)
  end)

  it("asks for a selection and leaves no undo point when nothing is selected", function()
    emu:add_item(emu.track, { file = wav, selected = false })
    run("Whisper")
    assert.matches("Select one or more", emu.messages[1].text)
    assert.are.equal(0, #engine.requests)
    assert.are.equal(0, #emu.undo_points)
  end)

  it("asks once for the engine command and keeps it", function()
    emu.responses.GetUserInputs = { { "/no/such/venv/bin/python3" } }
    run("Start engine")
    assert.are.equal('/no/such/venv/bin/python3 -m bridge',
      reaper.GetExtState("StepEdit", "engine_command"))
    assert.are.equal("/no/such/venv/bin/python3 -m bridge serve --host 127.0.0.1 --port " ..
      engine.port, emu.processes[1].cmdline)
    assert.is_false(emu.processes[1].started)
    assert.matches("Could not run", emu.messages[1].text)
  end)

  it("stores the settings dialog's values in ExtState", function()
    emu.responses.GetUserInputs = { { "localhost", "9400", "/opt/stepedit", "1", "3", "process",
                                      "EN", "Room tone", "1", "um, uh like", "", "1",
                                      "/home/me/p=/mnt/p; /x = /y", "studio",
                                      " " .. ("AB"):rep(32) .. " " } }
    run("Settings")
    assert.are.equal(15, emu.inputs_asked[1].n)
    local s = lib.settings()
    assert.are.same({ host = "localhost", port = 9400, engine_command = "/opt/stepedit",
                      keep_length = true, iterations = 3, transport = "process",
                      language = "en", mask_sound = "room_tone", take_markers = true,
                      fillers = { en = { "um", "uh", "like" }, zh = {} },
                      key = { id = "studio", secret = ("ab"):rep(32) }, remote = true,
                      map_paths = { "/home/me/p=/mnt/p", "/x=/y" } }, s)
    assert.is_true(emu.extstate.StepEdit.port.persist)
  end)

  it("names a missing library module and the package that installs it", function()
    assert(os.remove(emu.scripts .. "StepEdit/transport.lua"))
    run("Cancel jobs")
    assert.are.equal(1, #emu.messages)
    local text = emu.messages[1].text
    assert.matches('install the "StepEdit library" package with ReaPack', text, 1, true)
    assert.matches("StepEdit/transport.lua", text, 1, true)
    assert.are.equal(0, #emu.undo_points)
  end)

  it("finds its modules next to itself, not in the working folder", function()
    local elsewhere = H.tmpdir()
    local installed = H.install(elsewhere)
    assert.are.equal("/", installed:sub(1, 1))
    local loaded = dofile(installed .. "StepEdit_lib.lua")
    assert.are.equal(lib.ADDRESS.edit, loaded.ADDRESS.edit)
    assert.are.equal("function", type(loaded.edit_selected_items))
    H.rmdir(elsewhere)
  end)

  it("has a progress window with a Cancel button when ReaImGui is installed", function()
    local imgui_dir = emu.dir .. "/imgui"
    os.execute("mkdir -p '" .. imgui_dir .. "'")
    local f = assert(io.open(imgui_dir .. "/imgui.lua", "w"))
    f:write([[
      return function(version)
        local log = _G.IMGUI_LOG
        log.version = version
        local ImGui = { Cond_FirstUseEver = 2 }
        function ImGui.CreateContext(label) return { label = label } end
        function ImGui.SetNextWindowSize() end
        function ImGui.Begin(_, title) log.title = title return true, true end
        function ImGui.End() end
        function ImGui.Text(_, text) log.texts[#log.texts + 1] = text end
        function ImGui.ProgressBar(_, fraction, _, _, overlay)
          log.bars[#log.bars + 1] = { fraction, overlay }
        end
        function ImGui.Button(_, label) return log.press == label end
        return ImGui
      end]])
    f:close()
    _G.IMGUI_LOG = { texts = {}, bars = {} }
    rawset(reaper, "ImGui_GetBuiltinPath", function() return imgui_dir end)
    engine.behaviour = function() return { hold = true } end
    local item = emu:add_item(emu.track, { file = wav })
    emu:run_script(H.action(emu, "Faster"))
    for _ = 1, 5 do emu:tick() end
    local log = _G.IMGUI_LOG
    assert.are.equal("0.9", log.version)
    assert.are.equal("StepEdit faster", log.title)
    assert.are.same({ 0.5, "render 50%" }, log.bars[#log.bars])
    assert.are.equal("voice.wav", item.takes[1].name) -- no progress in names with a window
    log.press = "Cancel"
    assert.are.equal("idle", emu:run_deferred(5))
    engine:serve()
    assert.is_true(#engine.cancels >= 1)
    assert.are.equal(1, #item.takes)
    assert.are.same({}, emu.console) -- the window replaces the console
    _G.IMGUI_LOG = nil
  end)
end)
