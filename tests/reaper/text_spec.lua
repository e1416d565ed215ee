-- "Transcribe selected items", "Edit as text" and "Remove fillers", run unchanged in the
-- emulator against the fake engine over real UDP (and the fake `stepedit` client for the
-- process transport): notes, stored words, take markers, the text box (ReaImGui and the
-- GetUserInputs fallback), one undo point per apply, refusals.
local H = dofile("tests/reaper/helpers.lua")
local FakeEngine = dofile("tests/reaper/fake_engine.lua")
local socket = require("socket")

local TEXT = FakeEngine.TEXT -- "um so the plan is simple"
local UNSUPPORTED = "new words need the stepaudio backend, which says them in the speaker's voice"

local close = H.assert_close

describe("StepEdit text actions", function()
  local emu, lib, engine, wav

  local function run(script, timeout)
    return H.run_checked(emu, script, timeout)
  end

  -- The GetUserInputs answer that replaces the text shown with `edited`.
  local function answer(edited)
    return function(asked)
      asked.shown = table.concat(asked.values, " "):gsub("%s+$", "")
      return { edited }
    end
  end

  local function messages()
    local texts = {}
    for _, m in ipairs(emu.messages) do texts[#texts + 1] = m.text end
    return table.concat(texts, "\n---\n")
  end

  before_each(function()
    lib = H.lib()
    engine = FakeEngine.new({ lib = lib, write_wav = H.write_wav })
    emu = H.project({ port = engine.port })
    emu.on_tick = function() engine:serve() end
    wav = H.write_wav(emu.dir .. "/Media/voice.wav", 4)
  end)

  after_each(function()
    engine:close()
    rawset(reaper, "ImGui_GetBuiltinPath", nil)
    _G.IMGUI_FAKE = nil
    H.rmdir(emu.dir)
  end)

  describe("Transcribe selected items", function()
    it("writes the words into the notes and the take, in one undo point", function()
      local item = emu:add_item(emu.track, { file = wav, position = 2, startoffs = 1, length = 2 })
      local before = emu:dump()
      assert.are.equal("idle", run("Transcribe selected items"))

      local sent = engine.requests[1]
      assert.are.equal(lib.ADDRESS.transcribe, sent.address)
      assert.is_nil(sent.request.edit)
      close(1, sent.request.start)
      close(2, sent.request.length)
      assert.are.equal("auto", sent.request.language)
      assert.are.equal(emu.dir .. "/Media", sent.request.output_dir)

      assert.are.equal(TEXT, item.notes)
      assert.are.equal(1, #item.takes)
      local t = lib.stored_transcript(item.takes[1])
      assert.are.equal(TEXT, t.text)
      assert.are.equal("en", t.language)
      assert.are.equal(wav, t.input)
      close(1, t.start)
      close(2, t.length)
      assert.are.equal(6, #t.words)
      assert.are.same({ "um", true }, { t.words[1].word, t.words[1].filler })
      assert.are.same({ "so", false }, { t.words[2].word, t.words[2].filler })
      close(2 / 7 * 0.5, t.words[1].start, 1e-3)
      assert.are.same({}, item.takes[1].markers) -- markers are a setting, off by default

      assert.are.equal(1, #emu.undo_points)
      assert.are.same({ "StepEdit transcribe", 4 },
        { emu.undo_points[1].description, emu.undo_points[1].flags })
      for _, m in ipairs(emu.mutations) do
        if m.what ~= "take P_NAME" then assert.is_true(m.in_undo_block, m.what) end
      end
      assert.matches("1 item(s) transcribed", H.console_text(emu), 1, true)
      assert.are.same({}, emu.messages)
      emu:undo()
      assert.are.same(before, emu:dump())
    end)

    it("adds take markers at word starts in the take's source time when set", function()
      emu:set_extstate("StepEdit", "take_markers", "1", true)
      local root = assert(emu:wave_source(wav))
      local item = emu:add_item(emu.track,
        { source = emu:section_source(root, 0.5), startoffs = 1, length = 2 })
      reaper.GetSetMediaItemInfo_String(item, "P_NOTES", "Interview A", true)
      local take = item.takes[1]
      reaper.SetTakeMarker(take, -1, "mine", 1.2, 0)
      run("Transcribe selected items")

      close(1.5, engine.requests[1].request.start) -- the file's time: section + take offset
      local markers = take.markers
      assert.are.equal(7, #markers)
      local step = 2 / 7
      close(1 + step * 0.5, markers[1].srcpos, 1e-3) -- source time = file time - section offset
      assert.are.equal("um", markers[1].name)
      assert.are.equal(reaper.ColorToNative(230, 140, 40) | 0x1000000, markers[1].color)
      assert.are.equal("mine", markers[2].name)
      assert.are.equal("so", markers[3].name)
      assert.are.equal(0, markers[3].color)
      assert.are.equal("Interview A\n\n" .. TEXT, item.notes)

      -- Transcribing again replaces its own markers and notes, not the user's.
      engine.behaviour = function() return { text = "so the plan" } end
      run("Transcribe selected items")
      local names = {}
      for _, m in ipairs(take.markers) do names[#names + 1] = m.name end
      assert.are.same({ "mine", "so", "the", "plan" }, names)
      assert.are.equal("Interview A\n\nso the plan", item.notes)
      assert.are.equal(2, #emu.undo_points)
      emu:undo()
      assert.are.equal(7, #emu:all_items()[1].takes[1].markers)
    end)

    it("reads the words from the sidecar when the result leaves them out", function()
      engine.behaviour = function() return { words_in_file = true } end
      local item = emu:add_item(emu.track, { file = wav })
      run("Transcribe selected items")
      assert.are.equal(TEXT, item.notes)
      assert.are.equal(6, #lib.stored_transcript(item.takes[1]).words)
    end)

    local function many_words()
      local words = {}
      for i = 1, 300 do words[i] = "word" .. i end
      return table.concat(words, " ") -- a reply of about 40 KB
    end

    it("reads a reply far larger than 8 KB whole", function()
      engine.behaviour = function() return { text = many_words(), no_sidecar = true } end
      local item = emu:add_item(emu.track, { file = wav })
      run("Transcribe selected items")
      assert.are.same({}, emu.messages)
      assert.are.equal(300, #lib.stored_transcript(item.takes[1]).words)
    end)

    it("reads the sidecar when a socket that reads 8 KB at most cuts the reply", function()
      engine.behaviour = function() return { text = many_words() } end
      local real_udp = socket.udp
      socket.udp = function() -- as LuaSocket builds whose receive() stops at 8192 bytes
        local udp = real_udp()
        return setmetatable({}, { __index = function(_, name)
          if name == "receive" then
            return function(_, size)
              local data, err = udp:receive(size)
              return data and data:sub(1, 8192), err
            end
          end
          return function(_, ...) return udp[name](udp, ...) end
        end })
      end
      local item = emu:add_item(emu.track, { file = wav })
      local ok, err = pcall(run, "Transcribe selected items")
      socket.udp = real_udp
      assert(ok, err)
      assert.are.same({}, emu.messages)
      assert.are.equal(300, #lib.stored_transcript(item.takes[1]).words)
    end)

    it("lists failures and changes nothing", function()
      engine.behaviour = function() return { error = { "silent_input", "only silence" } } end
      emu:add_item(emu.track, { file = wav })
      local before = emu:dump()
      run("Transcribe selected items")
      assert.matches("1 of 1 item(s) could not be transcribed; they are unchanged",
        messages(), 1, true)
      assert.matches("silent_input: only silence", messages(), 1, true)
      assert.are.same(before, emu:dump())
      assert.are.equal(0, #emu.undo_points)
    end)
  end)

  describe("Edit as text", function()
    it("sends the edited text as one text edit and adds the result as a new take", function()
      local item = emu:add_item(emu.track, { file = wav, length = 3 })
      run("Transcribe selected items")
      local transcribed = emu:dump()
      emu.responses.GetUserInputs = { answer("um the plan is {simple}") }
      run("Edit as text")

      local asked = emu.inputs_asked[1]
      assert.are.equal(TEXT, asked.shown)
      assert.are.same({ "Line 1", "Line 2", "Line 3" }, asked.captions)
      assert.matches('"voice.wav" at 0:00.0 as text', asked.title, 1, true)
      assert.are.equal(2, #engine.requests)
      local sent = engine.requests[2]
      assert.are.equal(lib.ADDRESS.edit, sent.address)
      assert.are.same({ type = "text", option = "room_tone", text = TEXT,
                        target_text = "um the plan is {simple}", language = "en" },
        sent.request.edit)
      close(3, sent.request.length)

      assert.are.equal(2, #item.takes)
      assert.are.equal(2, item.curtake)
      assert.are.equal("StepEdit text edit", item.takes[2].name)
      assert.are.equal(2, #emu.undo_points)
      assert.are.equal("StepEdit text edit", emu.undo_points[2].description)
      -- The result's spoken words are the new take's transcript (no transcription needed).
      local t = lib.stored_transcript(item.takes[2])
      assert.are.equal("um the plan is", t.text)
      assert.are.equal(item.takes[2].source.file, t.input)
      assert.are.equal("um the plan is", item.notes)
      assert.are.equal("", reaper.GetExtState("StepEdit", "draft:" .. item.takes[1].guid))

      -- Editing the new take's text starts from its stored words.
      emu.responses.GetUserInputs = { answer("the plan") }
      run("Edit as text")
      assert.are.equal(3, #engine.requests)
      assert.are.equal("um the plan is", emu.inputs_asked[2].shown)
      assert.are.equal(3, #item.takes)
      emu:undo()
      emu:undo()
      assert.are.same(transcribed, emu:dump())
    end)

    it("transcribes first when the take has no words for what the item plays", function()
      local item = emu:add_item(emu.track, { file = wav, length = 3 })
      run("Transcribe selected items")
      reaper.SetMediaItemInfo_Value(item, "D_LENGTH", 2) -- trimmed: the stored words are stale
      emu.responses.GetUserInputs = { answer("so the plan") }
      run("Edit as text")
      local addresses = {}
      for _, r in ipairs(engine.requests) do addresses[#addresses + 1] = r.address end
      assert.are.same({ lib.ADDRESS.transcribe, lib.ADDRESS.transcribe, lib.ADDRESS.edit },
        addresses)
      close(2, engine.requests[2].request.length)
      assert.are.same({ "StepEdit transcribe", "StepEdit transcribe", "StepEdit text edit" },
        { emu.undo_points[1].description, emu.undo_points[2].description,
          emu.undo_points[3].description })
      assert.are.equal("StepEdit text edit", item.takes[2].name)
    end)

    it("shows the engine's message when it cannot say new words, and keeps the text", function()
      engine.behaviour = function(request)
        if request.edit then return { error = { "unsupported", UNSUPPORTED } } end
      end
      local item = emu:add_item(emu.track, { file = wav })
      run("Transcribe selected items")
      emu.responses.GetUserInputs = { answer("so the plan is perfect") }
      run("Edit as text")
      assert.are.equal(1, #emu.messages)
      local text = emu.messages[1].text
      assert.matches("unsupported: " .. UNSUPPORTED, text, 1, true)
      assert.matches('Your edited text is kept: run "StepEdit_Edit as text" again', text, 1, true)
      assert.are.equal(1, #item.takes)
      assert.are.equal(1, #emu.undo_points)

      emu.responses.GetUserInputs = { answer("so the plan is perfect"), false }
      run("Edit as text") -- the kept text is shown again
      assert.are.equal("so the plan is perfect", emu.inputs_asked[2].shown)
      run("Edit as text") -- cancelled: the kept text is dropped
      emu.responses.GetUserInputs = { false }
      run("Edit as text")
      assert.are.equal(TEXT, table.concat(emu.inputs_asked[4].values, " "):gsub("%s+$", ""))
      assert.are.equal(1, #emu.undo_points)
    end)

    it("sends nothing for an unchanged text or a cancelled dialog", function()
      emu:add_item(emu.track, { file = wav })
      run("Transcribe selected items")
      emu.responses.GetUserInputs = { answer("  um so the plan\nis simple "), false }
      run("Edit as text")
      run("Edit as text")
      assert.are.equal(1, #engine.requests)
      assert.are.equal("The text is unchanged; nothing was sent.", messages())
      assert.are.equal(1, #emu.undo_points)
    end)

    it("asks for exactly one item", function()
      emu:add_item(emu.track, { file = wav })
      emu:add_item(emu.track, { file = wav, position = 5 })
      run("Edit as text")
      assert.are.equal("Select one speech item to edit as text.", messages())
      assert.are.equal(0, #engine.requests)
    end)

    it("splits the text over the fallback's fields, around its separator", function()
      local words = {}
      for i = 1, 60 do words[i] = "w" .. i end
      words[3], words[7] = "yes,", "a|b"
      local text = table.concat(words, " ")
      engine.behaviour = function() return { text = text } end
      emu:add_item(emu.track, { file = wav })
      run("Transcribe selected items")
      emu.responses.GetUserInputs = { answer(text .. " [Laughter]") }
      run("Edit as text")
      local asked = emu.inputs_asked[1]
      assert.are.equal("~", asked.separator) -- "|" is in the text
      assert.is_true(asked.n >= 6 and asked.n <= 16)
      for i = 1, asked.n - 2 do assert.is_true(#asked.values[i] <= 48, asked.values[i]) end
      assert.are.equal(text, asked.shown)
      assert.are.equal(text .. " [Laughter]", engine.requests[2].request.edit.target_text)
    end)

    it("refuses a text longer than the fallback dialog holds, naming ReaImGui", function()
      local words = {}
      for i = 1, 150 do words[i] = "word" .. i end -- about 1 KB
      engine.behaviour = function() return { text = table.concat(words, " ") } end
      emu:add_item(emu.track, { file = wav })
      run("Transcribe selected items")
      run("Edit as text")
      assert.are.equal(0, #emu.inputs_asked)
      assert.matches("REAPER's plain input dialog holds about 800", messages(), 1, true)
      assert.matches("Install ReaImGui", messages(), 1, true)
      assert.are.equal(1, #engine.requests)
    end)

    it("sends nothing when the edited text overflows the dialog's 1,023 bytes", function()
      emu:add_item(emu.track, { file = wav })
      run("Transcribe selected items")
      emu.responses.GetUserInputs = { answer(TEXT .. string.rep(" more", 220)) }
      run("Edit as text")
      assert.matches("part of it was lost; nothing was sent", messages(), 1, true)
      assert.are.equal(1, #engine.requests)
      assert.are.equal(1, #emu.undo_points)
    end)

    it("edits in a ReaImGui window when ReaImGui is installed", function()
      local frames = 0
      local log = { texts = {}, titles = {} }
      local ImGui = { Cond_FirstUseEver = 2 }
      function ImGui.CreateContext() return {} end
      function ImGui.SetNextWindowSize() end
      function ImGui.Begin(_, title) log.titles[#log.titles + 1] = title return true, true end
      function ImGui.End() frames = frames + 1 end
      function ImGui.TextWrapped(_, text) log.texts[#log.texts + 1] = text end
      function ImGui.GetFrameHeightWithSpacing() return 24 end
      function ImGui.InputTextMultiline(_, _, text)
        log.shown = log.shown or text
        return true, frames >= 2 and "um the\nplan is simple  [Breathing]" or text
      end
      function ImGui.SameLine() end
      function ImGui.Button(_, label) return label == "Apply" and frames >= 3 end
      function ImGui.ProgressBar() end
      function ImGui.Text() end
      H.fake_imgui(emu, ImGui)
      local item = emu:add_item(emu.track, { file = wav })
      run("Transcribe selected items")
      run("Edit as text")
      assert.are.equal("0.9", ImGui.version_asked)
      assert.are.equal(TEXT, log.shown)
      assert.matches('"voice.wav" at 0:00.0 as text', table.concat(log.titles, "\n"), 1, true)
      assert.matches("{words} in braces to mask", table.concat(log.texts), 1, true)
      assert.are.equal(0, #emu.inputs_asked)
      assert.are.equal("um the plan is simple [Breathing]",
        engine.requests[2].request.edit.target_text)
      assert.are.equal("StepEdit text edit", item.takes[2].name)
    end)

    it("sends the mask sound and language of the settings", function()
      emu:set_extstate("StepEdit", "mask_sound", "bleep", true)
      emu:set_extstate("StepEdit", "language", "zh", true)
      emu:add_item(emu.track, { file = wav })
      run("Transcribe selected items")
      assert.are.equal("zh", engine.requests[1].request.language)
      emu.responses.GetUserInputs = { answer("{um} so the plan is simple") }
      run("Edit as text")
      local edit = engine.requests[2].request.edit
      assert.are.same({ "bleep", "zh" }, { edit.option, edit.language })
    end)

    it("is not repeated by one more pass", function()
      emu:add_item(emu.track, { file = wav })
      run("Transcribe selected items")
      emu.responses.GetUserInputs = { answer("so the plan") }
      run("Edit as text")
      run("One more pass on the active take")
      assert.are.equal(2, #engine.requests)
      assert.matches("text edits are not repeated", messages(), 1, true)
    end)
  end)

  describe("Remove fillers", function()
    it("sends the fillers edit with the stored words and the settings' list", function()
      emu:set_extstate("StepEdit", "fillers_en", "um uh, like", true)
      emu:set_extstate("StepEdit", "iterations", "3", true)
      local item = emu:add_item(emu.track, { file = wav })
      run("Transcribe selected items")
      run("Remove fillers")
      assert.are.same({ type = "fillers", language = "en", fillers = { "um", "uh", "like" },
                        text = TEXT }, engine.requests[2].request.edit)
      assert.are.equal("StepEdit remove fillers", item.takes[2].name)
      assert.are.equal("StepEdit remove fillers", emu.undo_points[2].description)
    end)

    it("leaves language and list to the engine when nothing is known or set", function()
      local item = emu:add_item(emu.track, { file = wav })
      run("Remove fillers")
      assert.are.same({ type = "fillers" }, engine.requests[1].request.edit)
      assert.are.equal("StepEdit remove fillers", item.takes[2].name)
    end)
  end)

  describe("over the process transport (stepedit send + status file)", function()
    it("transcribes with `send --kind transcribe` and edits with `send`", function()
      emu:set_extstate("StepEdit", "transport", "process", true)
      emu:set_extstate("StepEdit", "engine_command",
        "lua5.4 " .. os.getenv("PWD") .. "/tests/reaper/fake_stepedit.lua", true)
      emu.on_tick = function() socket.sleep(0.01) end -- the client runs in the background
      local item = emu:add_item(emu.track, { file = wav, length = 3 })
      run("Transcribe selected items")
      assert.are.equal(TEXT, item.notes)
      emu.responses.GetUserInputs = { answer("um the plan") }
      run("Edit as text")
      assert.are.equal("StepEdit text edit", item.takes[2].name)
      assert.are.equal("um the plan", item.notes)

      local jobs = emu.resource_dir .. "/Data/StepEdit/jobs/"
      local calls = {}
      for line in io.lines(jobs .. "fake-stepedit.log") do calls[#calls + 1] = lib.json_decode(line) end
      assert.are.equal(2, #calls)
      assert.are.same({ "send", "--kind", "transcribe", "--job-id" }, { table.unpack(calls[1], 1, 4) })
      assert.are.same({ "send", "--job-id" }, { table.unpack(calls[2], 1, 2) })
      assert.are.equal("--engine", calls[2][#calls[2] - 1])
    end)
  end)
end)
